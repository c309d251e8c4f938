import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Recorder, toRanges, UNKNOWN_GROUP } from '../src/recorder.js'
import { encodeHeader } from '../src/payload.js'
import { parseHumanDuration } from '../src/duration.js'
import { toLine } from '../src/wire.js'
import { parseLine } from '../src/control.js'
import { readEnv } from '../src/env.js'
import { nowNs } from '../src/clock.js'
import { decodeHistogram } from '../src/histogram.js'

test('seen ranges, duplicates, own messages and origin groups', () => {
  const r = new Recorder(0, [0, 0, 1])
  const msg = (origin, seq) => encodeHeader({ origin, seq: BigInt(seq), sendNs: nowNs() }, 64)
  r.deliver(msg(0, 0), nowNs()) // own message: ignored
  for (const s of [0, 1, 2, 5, 7, 6, 2]) r.deliver(msg(2, s), nowNs())
  r.deliver(msg(9, 0), nowNs())
  r.deliver(Buffer.from('garbage'), nowNs())
  assert.equal(toLine(r.seenRanges()), '[{"origin":2,"ranges":[[0,2],[5,7]]},{"origin":9,"ranges":[[0,0]]}]\n')
  assert.equal(r.received, 7)
  assert.equal(r.duplicates, 1)
  assert.equal(r.malformed, 1)
  assert.deepEqual(r.latency().map((l) => l.origin_group), [1, UNKNOWN_GROUP])
  assert.deepEqual(toRanges(new Set()), [])
})

test('latency is receive − due, latency_since_send receive − send; first deliveries reported', () => {
  const r = new Recorder(0, [0, 3])
  const ms = 1_000_000n
  const base = 1_700_000_000_000_000_000n
  const data = encodeHeader({ origin: 1, seq: 0n, dueNs: base, sendNs: base + 40n * ms, paced: true }, 64)
  const h = r.deliver(data, base + 45n * ms)
  assert.equal(h?.seq, 0n, 'first delivery returns its header')
  assert.equal(r.deliver(data, base + 46n * ms), null, 'a duplicate is not a first delivery')
  const [lat] = r.latency()
  const [since] = r.latencySinceSend()
  assert.equal(lat.origin_group, 3)
  assert.equal(decodeHistogram(lat.hdr).maxValue, decodeHistogram(lat.hdr).highestEquivalentValue(45_000))
  assert.equal(decodeHistogram(since.hdr).maxValue, decodeHistogram(since.hdr).highestEquivalentValue(5_000))
})

test('human durations as humantime writes them', () => {
  assert.equal(parseHumanDuration('1s'), 1000)
  assert.equal(parseHumanDuration('100ms'), 100)
  assert.equal(parseHumanDuration('1m'), 60_000)
  assert.equal(parseHumanDuration('1s 500ms'), 1500)
  assert.equal(parseHumanDuration('2us'), 0.002)
  assert.equal(parseHumanDuration('1day'), 86_400_000)
  for (const bad of ['', '5', '1 parsec', 's']) assert.throws(() => parseHumanDuration(bad), undefined, bad)
})

test('wire form: exact u64 integers and the Rust field names', () => {
  assert.equal(toLine({ type: 'state', state: 'ready', at_ns: 1795511292599507145n }),
    '{"type":"state","state":"ready","at_ns":1795511292599507145}\n')
  assert.equal(toLine({ type: 'ack', id: 5, ok: true }), '{"type":"ack","id":5,"ok":true}\n')
  assert.ok(nowNs() > 1_600_000_000_000_000_000n, 'nowNs is ns since the Unix epoch')
  const ping = parseLine('{"type":"ping","id":18446744073709551615}')
  assert.equal(toLine({ type: 'pong', id: ping.id, at_ns: 1n }), '{"type":"pong","id":18446744073709551615,"at_ns":1}\n')
  assert.deepEqual(parseLine('{"type":"command","id":7,"cmd":{"op":"report"}}'), { type: 'command', id: 7, cmd: { op: 'report' } })
})

test('environment', () => {
  assert.deepEqual(readEnv({ TESTBED_CONTROL_ADDR: 'tcp://127.0.0.1:1', JOB_COMPLETION_INDEX: '4' }),
    { controlAddr: 'tcp://127.0.0.1:1', index: 4, runId: '', listenIp: '127.0.0.1', secret: '' })
  assert.equal(readEnv({ TESTBED_CONTROL_ADDR: 'x', TESTBED_NODE_INDEX: '1', TESTBED_RUN_SECRET: 's3' }).secret, 's3')
  assert.throws(() => readEnv({}), /TESTBED_CONTROL_ADDR/)
  assert.throws(() => readEnv({ TESTBED_CONTROL_ADDR: 'x', TESTBED_NODE_INDEX: '-1' }), /not a node index/)
})
