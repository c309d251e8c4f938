#!/usr/bin/env node
// pubsub-node-js: a pubsub-testbed node built on js-libp2p. It speaks the node contract
// (docs/node-contract.md) with the orchestrator over the control channel named by
// TESTBED_CONTROL_ADDR, and is launched once per peer.
import './polyfill.js'
import { dialControl } from './control.js'
import { Node, EXIT_USAGE, EXIT_CONTROL } from './node.js'
import { implVersion } from './libp2p.js'
import { nowNs } from './clock.js'
import { readEnv } from './env.js'

async function main () {
  const arg = process.argv[2]
  if (arg === '--version' || arg === '-V') {
    console.log(`pubsub-node-js, ${implVersion()}`)
    return 0
  }
  if (arg != null) {
    process.stderr.write('usage: pubsub-node-js [--version]\n\nConfigured through TESTBED_CONTROL_ADDR, TESTBED_NODE_INDEX, TESTBED_LISTEN_IP, TESTBED_RUN_ID and TESTBED_RUN_SECRET; see docs/node-contract.md.\n')
    return EXIT_USAGE
  }
  const startNs = nowNs()
  let env
  try {
    env = readEnv()
  } catch (err) {
    process.stderr.write(`pubsub-node-js: ${err.message}\n`)
    return EXIT_USAGE
  }
  let ctrl
  try {
    ctrl = await dialControl(env.controlAddr)
  } catch (err) {
    process.stderr.write(`pubsub-node-js[${env.index}]: ${err.message}\n`)
    return /expected tcp:\/\//.test(err.message) ? EXIT_USAGE : EXIT_CONTROL
  }
  return new Node(env, ctrl, startNs).run()
}

main().then((code) => process.exit(code), (err) => {
  process.stderr.write(`pubsub-node-js: ${err.stack ?? err}\n`)
  process.exit(1)
})
