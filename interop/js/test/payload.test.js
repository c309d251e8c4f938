import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { encodeHeader, decodeHeader, HEADER_LEN, HEADER_LEN_V1 } from '../src/payload.js'

// interop/fixtures/payload-vectors.json: the Rust contract (interop/check-histograms) and the
// Go node's tests check the same bytes.
const VECTORS = Object.fromEntries(JSON.parse(readFileSync(new URL('../../fixtures/payload-vectors.json', import.meta.url), 'utf8'))
  .vectors.map((v) => [v.name, v]))

function headerOf (v) {
  const h = { origin: v.origin, seq: BigInt(v.seq), sendNs: BigInt(v.send_ns), dueNs: BigInt(v.due_ns), paced: v.paced }
  if (v.trace != null) {
    h.trace = { traceId: Uint8Array.from(Buffer.from(v.trace.trace_id, 'hex')), spanId: Uint8Array.from(Buffer.from(v.trace.span_id, 'hex')), flags: v.trace.flags }
  }
  return h
}

test('payload layout 2 matches the shared vectors, both ways; layout 1 still decodes', () => {
  for (const name of ['layout_2', 'layout_2_traced']) {
    const v = VECTORS[name]
    assert.equal(encodeHeader(headerOf(v), v.size).toString('hex'), v.hex, name)
  }
  for (const name of ['layout_1', 'layout_2', 'layout_2_traced']) {
    const v = VECTORS[name]
    assert.deepEqual(decodeHeader(Buffer.from(v.hex, 'hex')), headerOf(v), name)
  }
})

test('payload round trip, with and without trace context', () => {
  const h = { origin: 7, seq: 42n, sendNs: 1_700_000_000_123_456_789n, dueNs: 1_700_000_000_100_000_000n, paced: true }
  const b = encodeHeader(h, 256)
  assert.equal(b.length, 256)
  assert.deepEqual(decodeHeader(b), h)
  const t = { ...h, trace: { traceId: new Uint8Array(16).fill(1), spanId: new Uint8Array(8).fill(2), flags: 1 } }
  const bt = encodeHeader(t, 10)
  assert.equal(bt.length, HEADER_LEN, 'a size below the header gives the header alone')
  assert.deepEqual(decodeHeader(bt), t)
  assert.equal(decodeHeader(encodeHeader({ origin: 1, seq: 1n, sendNs: 5n }, 0)).dueNs, 5n, 'due defaults to send')
})

test('payload garbage is refused', () => {
  assert.throws(() => decodeHeader(Buffer.from('PT')), /shorter than the 57-byte header/)
  assert.throws(() => decodeHeader(new Uint8Array(60)), /magic/)
  const h = encodeHeader({ origin: 1, seq: 1n, sendNs: 1n, dueNs: 1n, paced: false }, HEADER_LEN)
  assert.throws(() => decodeHeader(h.subarray(0, HEADER_LEN_V1)), /49 bytes, shorter than the 57-byte header/)
  h[2] = 3
  assert.throws(() => decodeHeader(h), /layout version 3/)
})
