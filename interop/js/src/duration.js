// The welcome's gossipsub durations are written the way Rust's humantime formats them:
// number-unit pairs, optionally separated by spaces: "1s", "100ms", "1m", "1s 500ms", "1day".

const NS = {
  nsec: 1, ns: 1,
  usec: 1e3, us: 1e3, 'µs': 1e3,
  msec: 1e6, ms: 1e6,
  seconds: 1e9, second: 1e9, secs: 1e9, sec: 1e9, s: 1e9,
  minutes: 60e9, minute: 60e9, min: 60e9, mins: 60e9, m: 60e9,
  hours: 3600e9, hour: 3600e9, hr: 3600e9, hrs: 3600e9, h: 3600e9,
  days: 86400e9, day: 86400e9, d: 86400e9,
  weeks: 604800e9, week: 604800e9, w: 604800e9,
  months: 2630016e9, month: 2630016e9, M: 2630016e9,
  years: 31557600e9, year: 31557600e9, y: 31557600e9
}

/**
 * @param {string} text
 * @returns {number} milliseconds (fractional below 1 ms)
 */
export function parseHumanDuration (text) {
  const s = String(text).trim()
  if (s === '') throw new Error('empty duration')
  const re = /\s*(\d+)\s*([a-zA-Zµ]+)/y
  let total = 0
  let pos = 0
  while (pos < s.length) {
    re.lastIndex = pos
    const m = re.exec(s)
    if (m == null) throw new Error(`invalid duration "${text}": expected a number with a unit at "${s.slice(pos)}"`)
    const mult = NS[m[2]]
    if (mult === undefined) throw new Error(`invalid duration "${text}": unknown unit "${m[2]}"`)
    total += Number(m[1]) * mult
    pos = re.lastIndex
    while (s[pos] === ' ') pos++
  }
  return total / 1e6
}
