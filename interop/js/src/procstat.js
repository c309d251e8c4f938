import { readFileSync } from 'node:fs'

/** Current (VmRSS) and peak (VmHWM) resident set size in bytes, from /proc/self/status. */
export function rssBytes () {
  let current = 0
  let peak = 0
  try {
    for (const line of readFileSync('/proc/self/status', 'utf8').split('\n')) {
      if (line.startsWith('VmRSS:')) current = parseKb(line)
      else if (line.startsWith('VmHWM:')) peak = parseKb(line)
    }
  } catch {
    current = process.memoryUsage.rss()
    peak = current
  }
  return { current, peak }
}

function parseKb (line) {
  return Number(line.trim().split(/\s+/)[1]) * 1024
}

/** User + system CPU time of the process, in ns. */
export function cpuNs () {
  const u = process.cpuUsage()
  return (u.user + u.system) * 1000
}
