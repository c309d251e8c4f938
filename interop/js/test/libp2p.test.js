import '../src/polyfill.js'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { pubsubService, payloadMessageId, newLibp2p } from '../src/libp2p.js'
import { DEFAULT_GOSSIPSUB, subscribeGrace, explainDialError } from '../src/node.js'

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

test('a failed security negotiation is named a security mismatch', () => {
  assert.match(explainDialError('Protocol selection failed - could not negotiate /plaintext/2.0.0', 'plaintext'), /security mismatch: this node uses plaintext security/)
  assert.match(explainDialError('Protocol selection failed - could not negotiate /noise', 'noise'), /security mismatch/)
  assert.equal(explainDialError('Protocol selection failed - could not negotiate /yamux/1.0.0', 'noise'), 'Protocol selection failed - could not negotiate /yamux/1.0.0')
})

// Real js-libp2p nodes over loopback TCP: plaintext connects to plaintext, and a plaintext
// dial to a noise node fails with an error that explainDialError names a security mismatch.
test('security must match: plaintext to plaintext works, plaintext to noise fails by name', async () => {
  const mk = async (security) => newLibp2p(await generateKeyPair('Ed25519'), '127.0.0.1', { ...config('gossipsub', 'strict'), security })
  const [plain, plain2, noisy] = await Promise.all([mk('plaintext'), mk('plaintext'), mk('noise')])
  try {
    await plain.dial(plain2.getMultiaddrs()[0], { signal: AbortSignal.timeout(30_000) })
    await assert.rejects(plain.dial(noisy.getMultiaddrs()[0], { signal: AbortSignal.timeout(30_000) }),
      (err) => /security mismatch: this node uses plaintext security/.test(explainDialError(err.message, 'plaintext')))
  } finally {
    await Promise.all([plain.stop(), plain2.stop(), noisy.stop()])
  }
})
