// Payload layout v2 (contract/src/payload.rs), all integers big-endian:
//
//   offset size field
//    0     2    magic "PT"
//    2     1    layout version (2)
//    3     1    flags: bit 0 = trace context present; bit 1 = paced (due time from a rate schedule)
//    4     4    origin node index (u32)
//    8     8    sequence number, per origin, from 0 (u64)
//   16     8    send time, ns since the Unix epoch, when handed to the router (u64)
//   24     8    due time, ns since the Unix epoch, when the schedule said it was due (u64)
//   32    16    W3C trace id (zero when absent)
//   48     8    W3C parent span id (zero when absent)
//   56     1    W3C trace flags
//   57     ..   padding (zero bytes) up to the configured message size
//
// Layout 1 (49 bytes: no due time, trace context at 24) is still read: due = send, not paced.

export const HEADER_LEN = 57
export const HEADER_LEN_V1 = 49
export const LAYOUT_VERSION = 2
const FLAG_TRACE = 1
const FLAG_PACED = 2

/**
 * @typedef {{ traceId: Uint8Array, spanId: Uint8Array, flags: number }} TraceContext
 * @typedef {{ origin: number, seq: bigint, sendNs: bigint, dueNs: bigint, paced: boolean, trace?: TraceContext }} Header
 * dueNs is when the rate schedule said the message was due; back to back it equals sendNs.
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
  out.writeBigUInt64BE(BigInt(h.sendNs), 16)
  out.writeBigUInt64BE(BigInt(h.dueNs ?? h.sendNs), 24)
  if (h.paced) out[3] |= FLAG_PACED
  if (h.trace != null) {
    out[3] |= FLAG_TRACE
    out.set(h.trace.traceId.subarray(0, 16), 32)
    out.set(h.trace.spanId.subarray(0, 8), 48)
    out[56] = h.trace.flags
  }
  return out
}

/**
 * Reads layout 2, or layout 1 (due = send, not paced).
 * @param {Uint8Array} bytes
 * @returns {Header}
 */
export function decodeHeader (bytes) {
  if (bytes.length < 3) {
    throw new Error(`message is ${bytes.length} bytes, shorter than the ${HEADER_LEN}-byte header`)
  }
  if (bytes[0] !== 0x50 || bytes[1] !== 0x54) {
    throw new Error('message does not start with the magic bytes "PT"')
  }
  const version = bytes[2]
  if (version !== 1 && version !== LAYOUT_VERSION) {
    throw new Error(`unknown payload layout version ${version}`)
  }
  const need = version === 1 ? HEADER_LEN_V1 : HEADER_LEN
  if (bytes.length < need) {
    throw new Error(`message is ${bytes.length} bytes, shorter than the ${need}-byte header`)
  }
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)
  const sendNs = b.readBigUInt64BE(16)
  /** @type {Header} */
  const h = {
    origin: b.readUInt32BE(4),
    seq: b.readBigUInt64BE(8),
    sendNs,
    dueNs: version === 1 ? sendNs : b.readBigUInt64BE(24),
    paced: version !== 1 && (b[3] & FLAG_PACED) !== 0
  }
  if ((b[3] & FLAG_TRACE) !== 0) {
    const at = version === 1 ? 24 : 32
    h.trace = {
      traceId: Uint8Array.from(b.subarray(at, at + 16)),
      spanId: Uint8Array.from(b.subarray(at + 16, at + 24)),
      flags: b[at + 24]
    }
  }
  return h
}
