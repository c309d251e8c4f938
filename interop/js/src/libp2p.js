// The js-libp2p stack: TCP, noise (or plaintext), yamux, identify, ping, and gossipsub or
// floodsub.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { plaintext } from '@libp2p/plaintext'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { gossipsub } from '@libp2p/gossipsub'
import { floodsub } from '@libp2p/floodsub'
import { parseHumanDuration } from './duration.js'

const require = createRequire(import.meta.url)

/** Version of an installed package, read from its package.json. */
export function packageVersion (name) {
  try {
    let dir = path.dirname(require.resolve(name))
    for (;;) {
      const file = path.join(dir, 'package.json')
      try {
        const pkg = JSON.parse(readFileSync(file, 'utf8'))
        if (pkg.name === name) return pkg.version
      } catch {}
      const up = path.dirname(dir)
      if (up === dir) return 'unknown'
      dir = up
    }
  } catch {
    return 'unknown'
  }
}

export function implVersion () {
  return `js-libp2p ${packageVersion('libp2p')}, @libp2p/gossipsub ${packageVersion('@libp2p/gossipsub')}, @libp2p/floodsub ${packageVersion('@libp2p/floodsub')}, node ${process.version}`
}

/** Message id in anonymous mode: origin ‖ seq from the payload (bytes 4..16). */
export function payloadMessageId (msg) {
  const data = msg.data ?? new Uint8Array()
  return data.length >= 16 ? data.slice(4, 16) : Uint8Array.from(data)
}

/**
 * Maps the welcome's variant and GossipsubParams onto the js pubsub service. Throws, naming
 * the field, for what js-libp2p cannot do.
 */
export function pubsubService (config) {
  const gp = config.gossipsub
  let globalSignaturePolicy
  let msgIdFn
  switch (gp.validation) {
    case 'strict':
      globalSignaturePolicy = 'StrictSign'
      break
    case 'anonymous':
      globalSignaturePolicy = 'StrictNoSign'
      msgIdFn = payloadMessageId
      break
    case 'permissive':
    case 'none':
      throw new Error(`gossipsub.validation "${gp.validation}" is not supported by js-libp2p pubsub, which knows only StrictSign (strict) and StrictNoSign (anonymous)`)
    default:
      throw new Error(`unknown gossipsub.validation "${gp.validation}" (expected strict, permissive, anonymous or none)`)
  }
  if (config.variant === 'floodsub') {
    if (globalSignaturePolicy === 'StrictNoSign') {
      // @libp2p/floodsub turns every incoming RPC message without a `from` into an error, so
      // in StrictNoSign mode it would drop every message, its own peers' included.
      throw new Error('gossipsub.validation "anonymous" is not supported with floodsub by js-libp2p: @libp2p/floodsub drops every message without an author; use strict')
    }
    return floodsub({ globalSignaturePolicy, emitSelf: false })
  }
  if (config.variant !== 'gossipsub') {
    throw new Error(`unknown variant "${config.variant}" (expected gossipsub or floodsub)`)
  }
  const ms = (field) => {
    try {
      return parseHumanDuration(gp[field])
    } catch (err) {
      throw new Error(`gossipsub.${field}: ${err.message}`)
    }
  }
  return gossipsub({
    D: gp.mesh_n,
    Dlo: gp.mesh_n_low,
    Dhi: gp.mesh_n_high,
    Dout: gp.mesh_outbound_min,
    Dlazy: gp.gossip_lazy,
    Dscore: Math.min(4, gp.mesh_n_high),
    gossipFactor: gp.gossip_factor,
    heartbeatInterval: ms('heartbeat'),
    // heartbeat_initial_delay: js-libp2p gossipsub has it fixed at 100 ms (the default).
    mcacheLength: gp.history_length,
    mcacheGossip: gp.history_gossip,
    fanoutTTL: ms('fanout_ttl'),
    floodPublish: gp.flood_publish,
    maxInboundDataLength: gp.max_transmit_size,
    globalSignaturePolicy,
    ...(msgIdFn != null ? { msgIdFn } : {}),
    allowPublishToZeroTopicPeers: true,
    emitSelf: false,
    // Peer scoring is off in every implementation of the testbed (go-libp2p-pubsub and
    // rust-libp2p enable it only on request); js-libp2p always scores, so every weight that
    // applies without topic parameters is zeroed. The IP colocation penalty in particular
    // would prune every peer of a fleet on one host once more than 10 share 127.0.0.1.
    scoreParams: {
      IPColocationFactorWeight: 0,
      behaviourPenaltyWeight: 0,
      appSpecificWeight: 0
    }
  })
}

/**
 * @param {import('@libp2p/interface').PrivateKey} privateKey
 * @param {string} listenIp
 * @param {object} config welcome config
 */
export async function newLibp2p (privateKey, listenIp, config) {
  const proto = listenIp.includes(':') ? 'ip6' : 'ip4'
  return createLibp2p({
    privateKey,
    addresses: { listen: [`/${proto}/${listenIp}/tcp/0`] },
    transports: [tcp()],
    // A node offers only its own security: peers of another fail to negotiate one.
    connectionEncrypters: [config.security === 'plaintext' ? plaintext() : noise()],
    streamMuxers: [yamux()],
    // A fleet on one host dials from one IP: lift the per-host inbound rate limit (5/s) and
    // the pending-connection cap (10) that would refuse its peers.
    // Handshakes of a fleet starting together on few cores can take seconds: allow 30 s, as
    // the node's connect command does.
    connectionManager: {
      dialTimeout: 30_000,
      addressDialTimeout: 30_000,
      inboundUpgradeTimeout: 30_000,
      maxConnections: 10_000,
      inboundConnectionThreshold: 10_000,
      maxIncomingPendingConnections: 1_000
    },
    // The connection monitor pings every peer and closes the connection when a ping times
    // out: on a host where a fleet shares a few cores that ends connections the test
    // depends on. go-libp2p and rust-libp2p nodes do not do this either.
    connectionMonitor: { enabled: false },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: pubsubService(config)
    }
  })
}
