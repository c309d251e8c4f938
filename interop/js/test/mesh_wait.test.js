import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MeshWait, ackInfo } from '../src/mesh_wait.js'
import { toLine } from '../src/wire.js'

// Topic "a" and "b" with fixed [mesh, subscribed] counts.
const counts = (a, b) => (t) => {
  const [mesh, subscribed] = t === 'a' ? a : b
  return { mesh, subscribed }
}
const newWait = () => new MeshWait(['a', 'b'], 0, 10_000, 1000, 5)

test('mesh target is min(mesh_n_low, subscribers), after the grace; mesh_ms from when met', () => {
  const w = newWait()
  assert.equal(w.evaluate(0, counts([1, 2], [2, 2])).status, 'waiting')
  assert.equal(w.evaluate(300, counts([2, 2], [2, 2])).status, 'waiting')
  const r = w.evaluate(1000, counts([2, 2], [2, 2]))
  assert.equal(r.status, 'done')
  assert.deepEqual(r.outcome, { meshed: true, mesh_ms: 300, topics: { a: { mesh: 2, subscribed: 2, target: 2 }, b: { mesh: 2, subscribed: 2, target: 2 } } })
  // A full mesh (mesh_n_low) needs no grace.
  const full = newWait().evaluate(50, counts([5, 9], [6, 7]))
  assert.equal(full.status, 'done')
  assert.equal(full.outcome.mesh_ms, 50)
  assert.equal(full.outcome.topics.b.target, 5)
  // The mesh time is from the moment every topic was last meshed.
  const dip = newWait()
  dip.evaluate(100, counts([2, 2], [2, 2]))
  dip.evaluate(200, counts([1, 2], [2, 2]))
  assert.equal(dip.evaluate(1200, counts([2, 2], [2, 2])).outcome.mesh_ms, 1200)
})

test('a topic nobody else subscribes to goes ahead after the grace, not meshed', () => {
  const w = newWait()
  assert.equal(w.evaluate(200, counts([5, 5], [0, 0])).status, 'waiting')
  const r = w.evaluate(1100, counts([5, 5], [0, 0]))
  assert.equal(r.status, 'done')
  assert.deepEqual(r.wentAhead, ['topic "b": no subscribed peer'])
  assert.equal(r.outcome.meshed, false)
  assert.equal(r.outcome.mesh_ms, undefined, 'the result carries no mesh_ms')
  assert.equal(toLine(ackInfo(r.outcome)), '{"mesh_ms":null,"meshed":false,"topics":{"a":{"mesh":5,"subscribed":5,"target":5},"b":{"mesh":0,"subscribed":0,"target":0}}}\n')
})

test('a non-empty mesh stuck below its target goes ahead, not meshed; a changing one waits', () => {
  const w = newWait()
  const stuck = counts([3, 8], [5, 5])
  for (const at of [0, 1500, 2900]) assert.equal(w.evaluate(at, stuck).status, 'waiting', `at ${at}`)
  const r = w.evaluate(3000, stuck)
  assert.equal(r.status, 'done')
  assert.deepEqual(r.wentAhead, ['topic "a": mesh stuck at 3 of 5'])
  assert.equal(r.outcome.meshed, false)
  assert.equal(r.outcome.topics.a.target, 5)
  const changing = newWait()
  for (const [i, at] of [0, 1000, 2000, 3000, 4000].entries()) {
    assert.equal(changing.evaluate(at, counts([1 + (i % 2), 8], [5, 5])).status, 'waiting', `at ${at}`)
  }
})

test('timeout names the topic; floodsub needs one subscribed peer', () => {
  const r = newWait().evaluate(10_000, counts([0, 3], [5, 5]))
  assert.equal(r.status, 'timed_out')
  assert.match(r.error, /^no mesh within 10000 ms: topic "a": 0 mesh peer\(s\) of 3 needed, 3 subscribed peer\(s\) known$/)
  assert.equal(ackInfo(r.outcome).meshed, false)
  const f = new MeshWait(['a'], 0, 1000, 1000, 1).evaluate(10, () => ({ mesh: 4, subscribed: 4 }))
  assert.equal(f.status, 'done')
  assert.equal(f.outcome.topics.a.target, 1)
  assert.equal(f.outcome.mesh_ms, 10)
})
