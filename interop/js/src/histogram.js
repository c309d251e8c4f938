// Latency histograms (contract/src/histogram.rs): microseconds, 1 µs .. 1 h, 3 significant
// figures, sent as HDR V2 compressed (zlib) encoding in standard padded base64.
import { deflateSync, inflateSync } from 'node:zlib'
import * as hdr from 'hdr-histogram-js'

export const MAX_LATENCY_US = 3_600_000_000
export const SIGFIG = 3

export function newLatencyHistogram () {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: MAX_LATENCY_US,
    numberOfSignificantValueDigits: SIGFIG,
    bitBucketSize: 64,
    autoResize: false,
    useWebAssembly: false
  })
}

/**
 * Records a receive − publish difference in ns, in whole µs, clamped to [0, MAX_LATENCY_US]
 * (a negative value means clock skew between hosts).
 * @param {import('hdr-histogram-js').Histogram} h
 * @param {bigint} ns
 */
export function recordLatencyNs (h, ns) {
  let us = ns / 1000n
  if (us < 0n) us = 0n
  if (us > BigInt(MAX_LATENCY_US)) us = BigInt(MAX_LATENCY_US)
  h.recordValue(Number(us))
}

/**
 * The V2 compressed encoding in base64.
 *
 * hdr-histogram-js (3.0.1) writes two header fields of the inflated V2 encoding wrongly: the
 * normalizing index offset (bytes 8..12) as 1 where it means 0 (no shift), and the
 * integer-to-double conversion ratio (bytes 32..40, an IEEE 754 double) as the *integer* 1,
 * i.e. the double 5e-324. The Rust reader refuses both (UnsupportedFeature). So the encoding
 * is unpacked, the two fields set to 0 and 1.0, and packed again.
 * @param {import('hdr-histogram-js').Histogram} h
 */
export function encodeHistogram (h) {
  const outer = Buffer.from(hdr.encodeIntoCompressedBase64(h), 'base64')
  const inner = inflateSync(outer.subarray(8, 8 + outer.readInt32BE(4)))
  inner.writeInt32BE(0, 8)
  inner.writeDoubleBE(1.0, 32)
  const packed = deflateSync(inner)
  const out = Buffer.alloc(8 + packed.length)
  outer.copy(out, 0, 0, 4) // compressed V2 cookie 0x1c849314
  out.writeInt32BE(packed.length, 4)
  packed.copy(out, 8)
  return out.toString('base64')
}

/** @param {string} text */
export function decodeHistogram (text) {
  return hdr.decodeFromCompressedBase64(text, 64, false)
}
