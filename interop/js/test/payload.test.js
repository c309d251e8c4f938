import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encodeHeader, decodeHeader, HEADER_LEN } from '../src/payload.js'

// The fixed vector of contract/src/payload.rs known_vector: the Rust and Go nodes check the
// same bytes.
const KNOWN_VECTOR = '50540100000000010000000000000002000000000000000300000000000000000000000000000000000000000000000000'

test('payload matches the contract test vector', () => {
  assert.equal(encodeHeader({ origin: 1, seq: 2n, publishNs: 3n }, HEADER_LEN).toString('hex'), KNOWN_VECTOR)
})

test('payload round trip, with and without trace context', () => {
  const h = { origin: 7, seq: 42n, publishNs: 1_700_000_000_123_456_789n }
  const b = encodeHeader(h, 256)
  assert.equal(b.length, 256)
  assert.deepEqual(decodeHeader(b), h)
  const t = { ...h, trace: { traceId: new Uint8Array(16).fill(1), spanId: new Uint8Array(8).fill(2), flags: 1 } }
  const bt = encodeHeader(t, 10)
  assert.equal(bt.length, HEADER_LEN, 'a size below the header gives the header alone')
  assert.deepEqual(decodeHeader(bt), t)
})

test('payload garbage is refused', () => {
  assert.throws(() => decodeHeader(Buffer.from('PT')), /shorter than the 49-byte header/)
  assert.throws(() => decodeHeader(new Uint8Array(60)), /magic/)
  const v2 = encodeHeader({ origin: 1, seq: 1n, publishNs: 1n }, 49)
  v2[2] = 2
  assert.throws(() => decodeHeader(v2), /layout version 2/)
})
