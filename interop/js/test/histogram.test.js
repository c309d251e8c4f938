import { test } from 'node:test'
import assert from 'node:assert/strict'
import { inflateSync } from 'node:zlib'
import { readFileSync, writeFileSync } from 'node:fs'
import { newLatencyHistogram, recordLatencyNs, encodeHistogram, decodeHistogram, MAX_LATENCY_US } from '../src/histogram.js'

test('histogram: V2 compressed base64 with the header the Rust reader requires', () => {
  const h = newLatencyHistogram()
  for (const us of [1, 7, 650, 651, 10_000, 2_000_000]) recordLatencyNs(h, BigInt(us) * 1000n)
  recordLatencyNs(h, -5n) // clock skew: 0
  recordLatencyNs(h, 1n << 62n) // clamped to the maximum
  const text = encodeHistogram(h)
  assert.match(text, /^HISTFAAA/, 'compressed V2 cookie 0x1c849314')
  const outer = Buffer.from(text, 'base64')
  const inner = inflateSync(outer.subarray(8, 8 + outer.readInt32BE(4)))
  assert.equal(inner.readUInt32BE(0), 0x1c849313, 'V2 cookie')
  assert.equal(inner.readInt32BE(8), 0, 'normalizing index offset')
  assert.equal(inner.readInt32BE(12), 3, 'significant figures')
  assert.equal(inner.readBigInt64BE(16), 1n, 'lowest discernible value')
  assert.equal(inner.readBigInt64BE(24), BigInt(MAX_LATENCY_US), 'highest trackable value')
  assert.equal(inner.readDoubleBE(32), 1.0, 'integer to double conversion ratio')
  const back = decodeHistogram(text)
  assert.equal(back.totalCount, 8)
  assert.equal(back.maxValue, h.highestEquivalentValue(h.maxValue))
  assert.equal(back.getValueAtPercentile(50), h.getValueAtPercentile(50))
})

// The latencies (µs) in interop/fixtures/latency-{go,js}.hdr: each implementation writes its
// own fixture (UPDATE_FIXTURES=1) and must read every fixture, and interop/check-histograms
// reads them all with the Rust contract's decoder.
const FIXTURE_VALUES = [0, 1, 7, 650, 651, 10_000, 2_000_000, MAX_LATENCY_US]
const fixture = (name) => new URL(`../../fixtures/latency-${name}.hdr`, import.meta.url)

test('histogram fixtures of every implementation decode', () => {
  if (process.env.UPDATE_FIXTURES === '1') {
    const h = newLatencyHistogram()
    for (const us of FIXTURE_VALUES) recordLatencyNs(h, BigInt(us) * 1000n)
    writeFileSync(fixture('js'), encodeHistogram(h) + '\n')
  }
  for (const name of ['go', 'js']) {
    const h = decodeHistogram(readFileSync(fixture(name), 'utf8'))
    assert.equal(h.totalCount, FIXTURE_VALUES.length, name)
    assert.equal(h.maxValue, h.highestEquivalentValue(MAX_LATENCY_US), name)
    assert.equal(h.getValueAtPercentile(50), h.highestEquivalentValue(650), name)
  }
})
