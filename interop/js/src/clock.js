// Wall-clock time in ns since the Unix epoch, as a BigInt. performance.timeOrigin (µs
// precision) anchors the monotonic performance.now(), so readings are sub-ms precise
// (Date.now() has only ms).
const originNs = BigInt(Math.round(performance.timeOrigin * 1000)) * 1000n

export function nowNs () {
  return originNs + BigInt(Math.round(performance.now() * 1e6))
}
