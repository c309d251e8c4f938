// JSON lines with exact 64-bit integers: values given as BigInt (ns timestamps exceed
// Number.MAX_SAFE_INTEGER) are written as plain JSON integers.

const MARK = '\u0000bigint:'

/**
 * @param {unknown} msg
 * @returns {string} one line, with its trailing newline
 */
export function toLine (msg) {
  const text = JSON.stringify(msg, (_k, v) => typeof v === 'bigint' ? MARK + v.toString() : v)
  // eslint-disable-next-line no-control-regex
  return text.replace(/"\\u0000bigint:(\d+)"/g, '$1') + '\n'
}
