// Payload layout v1 (contract/src/payload.rs), all integers big-endian:
//
//   offset size field
//    0     2    magic "PT"
//    2     1    layout version (1)
//    3     1    flags: bit 0 = trace context present
//    4     4    origin node index (u32)
//    8     8    sequence number, per origin, from 0 (u64)
//   16     8    publish time, ns since the Unix epoch (u64)
//   24    16    W3C trace id (zero when absent)
//   40     8    W3C parent span id (zero when absent)
//   48     1    W3C trace flags
//   49     ..   padding (zero bytes) up to the configured message size

export const HEADER_LEN = 49
export const LAYOUT_VERSION = 1
const FLAG_TRACE = 1

/**
 * @typedef {{ traceId: Uint8Array, spanId: Uint8Array, flags: number }} TraceContext
 * @typedef {{ origin: number, seq: bigint, publishNs: bigint, trace?: TraceContext }} Header
 */

/**
 * Encodes the header, padded with zeros to `size` bytes (at least the header).
 * @param {Header} h
 * @param {number} size
 * @returns {Buffer}
 */
export function encodeHeader (h, size) {
  const out = Buffer.alloc(Math.max(size, HEADER_LEN))
  out[0] = 0x50 // 'P'
  out[1] = 0x54 // 'T'
  out[2] = LAYOUT_VERSION
  out.writeUInt32BE(h.origin, 4)
  out.writeBigUInt64BE(BigInt(h.seq), 8)
  out.writeBigUInt64BE(BigInt(h.publishNs), 16)
  if (h.trace != null) {
    out[3] = FLAG_TRACE
    out.set(h.trace.traceId.subarray(0, 16), 24)
    out.set(h.trace.spanId.subarray(0, 8), 40)
    out[48] = h.trace.flags
  }
  return out
}

/**
 * @param {Uint8Array} bytes
 * @returns {Header}
 */
export function decodeHeader (bytes) {
  if (bytes.length < HEADER_LEN) {
    throw new Error(`message is ${bytes.length} bytes, shorter than the ${HEADER_LEN}-byte header`)
  }
  if (bytes[0] !== 0x50 || bytes[1] !== 0x54) {
    throw new Error('message does not start with the magic bytes "PT"')
  }
  if (bytes[2] !== LAYOUT_VERSION) {
    throw new Error(`unknown payload layout version ${bytes[2]}`)
  }
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)
  /** @type {Header} */
  const h = {
    origin: b.readUInt32BE(4),
    seq: b.readBigUInt64BE(8),
    publishNs: b.readBigUInt64BE(16)
  }
  if ((b[3] & FLAG_TRACE) !== 0) {
    h.trace = {
      traceId: Uint8Array.from(b.subarray(24, 40)),
      spanId: Uint8Array.from(b.subarray(40, 48)),
      flags: b[48]
    }
  }
  return h
}
