import '../src/polyfill.js'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { pubsubService, payloadMessageId } from '../src/libp2p.js'
import { DEFAULT_GOSSIPSUB, subscribeGrace } from '../src/node.js'

const config = (variant, validation) => ({ variant, gossipsub: { ...DEFAULT_GOSSIPSUB, validation } })

test('validation modes js-libp2p can and cannot do', () => {
  assert.equal(typeof pubsubService(config('gossipsub', 'strict')), 'function')
  assert.equal(typeof pubsubService(config('gossipsub', 'anonymous')), 'function')
  assert.equal(typeof pubsubService(config('floodsub', 'strict')), 'function')
  assert.throws(() => pubsubService(config('gossipsub', 'permissive')), /not supported by js-libp2p/)
  assert.throws(() => pubsubService(config('gossipsub', 'none')), /not supported by js-libp2p/)
  assert.throws(() => pubsubService(config('floodsub', 'anonymous')), /not supported with floodsub/)
  assert.throws(() => pubsubService(config('randomsub', 'strict')), /unknown variant/)
  assert.throws(() => pubsubService({ variant: 'gossipsub', gossipsub: { ...DEFAULT_GOSSIPSUB, heartbeat: '5' } }), /gossipsub.heartbeat/)
})

test('anonymous message id is origin ‖ seq', () => {
  const data = Uint8Array.from({ length: 49 }, (_, i) => i)
  assert.deepEqual([...payloadMessageId({ data })], [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15])
})

test('subscribe grace: heartbeat_initial_delay + heartbeat, at least 1 s', () => {
  assert.equal(subscribeGrace(DEFAULT_GOSSIPSUB), 1100)
  assert.equal(subscribeGrace({ heartbeat: '100ms', heartbeat_initial_delay: '100ms' }), 1000)
})
