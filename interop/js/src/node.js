// A pubsub-testbed node on js-libp2p: the contract (docs/node-contract.md) as a state
// machine driven by the orchestrator's messages.
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { Recorder } from './recorder.js'
import { encodeHeader } from './payload.js'
import { newLibp2p, implVersion } from './libp2p.js'
import { parseHumanDuration } from './duration.js'
import { rssBytes, cpuNs } from './procstat.js'
import { nowNs } from './clock.js'

export const PROTOCOL_VERSION = 1

// Exit codes (docs/node-contract.md, "Exit codes").
export const EXIT_OK = 0
export const EXIT_FAILED = 1
export const EXIT_STARTUP = 2
export const EXIT_ABORTED = 3

// Timing (docs/node-contract.md, "Timing").
const WELCOME_TIMEOUT_MS = 60_000
const DIAL_TIMEOUT_MS = 10_000
const DRAIN_TIMEOUT_MS = 3_000
const POLL_MS = 10

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

class Cancelled extends Error {}

export class Node {
  /**
   * @param {{ controlAddr: string, index: number, listenIp: string, runId: string }} env
   * @param {import('./control.js').Control} ctrl
   * @param {bigint} startNs
   */
  constructor (env, ctrl, startNs) {
    this.env = env
    this.ctrl = ctrl
    this.startNs = startNs
    this.config = null
    this.libp2p = null
    this.pubsub = null
    this.rec = null
    this.state = null
    /** @type {{state: string, at_ns: bigint, detail?: string}[]} */
    this.timeline = []
    /** @type {Map<string, number>} topic -> index of its open entry in subs */
    this.subscribed = new Map()
    this.subs = []
    this.published = []
    this.nextSeq = 0n
    this.publishing = 0
    this.idleState = null
    this.lastSnapshot = null
    this.stopping = false
    this.starting = null
    this.inflight = new Set()
    this.snapshotTimer = null
    /** @type {(code: number) => void} */
    this.exit = () => {}
  }

  log (text) {
    process.stderr.write(`pubsub-node-js[${this.env.index}]: ${text}\n`)
  }

  setState (state, detail) {
    if (this.state === state && detail == null) return
    this.state = state
    const change = { state, at_ns: state === 'starting' ? this.startNs : nowNs() }
    if (detail != null && detail !== '') change.detail = detail
    this.timeline.push(change)
    this.ctrl.send({ type: 'state', ...change })
  }

  /** Runs the node; resolves with the exit code. */
  async run () {
    this.privateKey = await generateKeyPair('Ed25519')
    this.peerId = peerIdFromPrivateKey(this.privateKey)
    const done = new Promise((resolve) => { this.exit = resolve })
    this.ctrl.send({
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      index: this.env.index,
      pid: process.pid,
      implementation: 'js',
      impl_version: implVersion()
    })
    this.setState('starting')
    this.ctrl.listen(
      (msg) => { this.handle(msg).catch((err) => this.stop('error', `internal error: ${err.stack ?? err}`)) },
      (text) => this.log(`${text} (ignored)`),
      () => {
        if (!this.stopping) {
          this.log('the orchestrator closed the control channel; exiting')
          this.stopping = true
          this.exit(EXIT_FAILED)
        }
      }
    )
    for (const sig of ['SIGTERM', 'SIGINT']) {
      process.on(sig, () => { this.stop('aborted', `signal ${sig}`) })
    }
    const welcomeTimer = setTimeout(() => {
      if (this.config == null) this.stop('error', `no welcome within ${WELCOME_TIMEOUT_MS / 1000}s`)
    }, WELCOME_TIMEOUT_MS)
    welcomeTimer.unref()
    return done
  }

  async handle (msg) {
    if (this.stopping) return
    switch (msg.type) {
      case 'welcome':
        if (this.config != null) {
          this.log('second welcome ignored')
          return
        }
        this.starting = this.start(msg)
        try {
          await this.starting
        } catch (err) {
          await this.stop('error', err.message)
        }
        return
      case 'abort':
        await this.stop('aborted', `abort: ${msg.reason}`)
        return
      case 'released':
        return // no command of protocol v1 makes this node signal
      case 'command': {
        const cmd = msg.cmd ?? {}
        if (this.starting != null) await this.starting.catch(() => {})
        if (this.config == null || this.libp2p == null) {
          this.ack(msg.id, null, new Error(`command "${cmd.op}" before welcome`))
          return
        }
        if (cmd.op === 'finish') {
          await this.stop('finished', '', msg.id)
          return
        }
        const work = this.command(cmd)
          .then((info) => this.ack(msg.id, info, null))
          .catch((err) => this.ack(msg.id, err.info ?? null, err))
        this.inflight.add(work)
        work.finally(() => this.inflight.delete(work))
        return
      }
      default:
        this.log(`unknown message type ${JSON.stringify(msg.type)} ignored`)
    }
  }

  ack (id, info, err) {
    const a = { type: 'ack', id, ok: err == null }
    if (err != null) a.error = err.message
    if (info != null) a.info = info
    this.ctrl.send(a)
  }

  async start (msg) {
    if (msg.protocol !== PROTOCOL_VERSION) {
      throw new Error(`orchestrator speaks protocol ${msg.protocol}, this node speaks ${PROTOCOL_VERSION}`)
    }
    const config = msg.config
    if (config == null || typeof config !== 'object') throw new Error('welcome without config')
    if (config.index !== this.env.index) {
      throw new Error(`welcome is for node ${config.index} but this is node ${this.env.index}`)
    }
    config.gossipsub = { ...DEFAULT_GOSSIPSUB, ...(config.gossipsub ?? {}) }
    this.config = config
    this.rec = new Recorder(config.index, config.origin_groups ?? [])
    try {
      this.libp2p = await newLibp2p(this.privateKey, this.env.listenIp, config)
    } catch (err) {
      throw new Error(`libp2p: ${err.message}`)
    }
    this.pubsub = this.libp2p.services.pubsub
    this.pubsub.addEventListener('message', (evt) => {
      const m = evt.detail
      if (this.subscribed.has(m.topic)) this.rec.deliver(m.data, nowNs())
    })
    const addrs = this.libp2p.getMultiaddrs().map((a) => a.toString().replace(/\/p2p\/.*$/, ''))
    this.ctrl.send({ type: 'listening', peer_id: this.peerId.toString(), listen_addrs: addrs })
    this.setState('listening')
    if (config.snapshot_interval_ms > 0) {
      this.snapshotTimer = setInterval(() => this.sendSnapshot(), config.snapshot_interval_ms)
    }
  }

  sendSnapshot () {
    this.ctrl.send({ type: 'snapshot', ...this.takeSnapshot() })
  }

  takeSnapshot () {
    const s = {
      at_ns: nowNs(),
      published: this.published.length,
      received: this.rec.received,
      duplicates: this.rec.duplicates,
      connected_peers: this.libp2p.getPeers().length,
      rss_bytes: rssBytes().current,
      cpu_ns: cpuNs()
    }
    if (this.subscribed.size > 0) {
      s.topics = {}
      for (const t of [...this.subscribed.keys()].sort()) s.topics[t] = this.topicPeers(t)
    }
    this.lastSnapshot = s
    return s
  }

  /** Known subscribed peers and mesh peers; floodsub's mesh is its subscribed peers. */
  topicPeers (topic) {
    const subscribers = this.pubsub.getSubscribers(topic).map(String)
    if (this.config.variant !== 'gossipsub' || typeof this.pubsub.getMeshPeers !== 'function') {
      return { mesh: subscribers.length, subscribed: subscribers.length }
    }
    const mesh = new Set(this.pubsub.getMeshPeers(topic).map(String))
    return { mesh: subscribers.filter((p) => mesh.has(p)).length, subscribed: subscribers.length }
  }

  async command (cmd) {
    switch (cmd.op) {
      case 'connect': return this.connect(cmd.peers ?? [])
      case 'disconnect': return this.disconnect(cmd.peers ?? [])
      case 'subscribe': return this.subscribe(cmd)
      case 'unsubscribe': return this.unsubscribe(cmd.topics ?? [])
      case 'publish': return this.publish(cmd)
      case 'report':
        this.sendSnapshot()
        return null
      default:
        throw new Error(`unknown command op ${JSON.stringify(cmd.op)}`)
    }
  }

  async connect (peers) {
    const failures = []
    await Promise.all(peers.map(async (p) => {
      try {
        const addr = multiaddr(`${p.addr}/p2p/${p.peer_id}`)
        await this.libp2p.dial(addr, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
      } catch (err) {
        failures.push(`node ${p.index} (${p.peer_id} at ${p.addr}): ${err.message}`)
      }
    }))
    failures.sort()
    const ok = peers.length - failures.length
    if ((ok > 0 || peers.length === 0) && this.state === 'listening') this.setState('connected')
    const info = { connected: ok, failed: failures.length }
    if (failures.length > 0) {
      const err = new Error(`${failures.length} of ${peers.length} dials failed: ${failures.join('; ')}`)
      err.info = info
      throw err
    }
    return info
  }

  async disconnect (peers) {
    const failures = []
    for (const p of peers) {
      try {
        await this.libp2p.hangUp(peerIdFromString(p.peer_id))
      } catch (err) {
        failures.push(`node ${p.index}: ${err.message}`)
      }
    }
    if (failures.length > 0) throw new Error(failures.join('; '))
    return null
  }

  async subscribe (cmd) {
    const start = Date.now()
    const topics = cmd.topics ?? []
    for (const t of topics) {
      if (this.subscribed.has(t)) continue
      this.pubsub.subscribe(t)
      this.subs.push({ topic: t, from_ns: nowNs() })
      this.subscribed.set(t, this.subs.length - 1)
    }
    this.setState('subscribed')
    if (!cmd.wait_mesh) return { topics: this.topicsInfo(topics) }
    // A topic with no known subscribed peer stops holding the ack back after this grace:
    // subscriptions of peers that subscribe at the same moment need a round trip to arrive.
    let grace = 1000
    if (this.config.variant === 'gossipsub') {
      grace = Math.max(grace, 2 * parseHumanDuration(this.config.gossipsub.heartbeat))
    }
    const deadline = start + Number(cmd.mesh_timeout_ms ?? 0)
    for (;;) {
      const waiting = this.meshShortfall(topics, Date.now() - start < grace)
      if (waiting.length === 0) break
      if (Date.now() > deadline) {
        const err = new Error(`mesh not formed within ${cmd.mesh_timeout_ms} ms: ${waiting.join('; ')}`)
        err.info = { topics: this.topicsInfo(topics) }
        throw err
      }
      if (this.stopping) throw new Cancelled('cancelled: the node is stopping')
      await sleep(POLL_MS)
    }
    this.setState('ready')
    return { mesh_ms: Date.now() - start, topics: this.topicsInfo(topics) }
  }

  /**
   * Topics whose mesh is not yet big enough: gossipsub needs min(mesh_n_low, subscribed
   * peers) mesh peers and at least one; floodsub one subscribed peer. A topic with no
   * subscribed peer waits only while inGrace.
   */
  meshShortfall (topics, inGrace) {
    const out = []
    for (const t of topics) {
      const tp = this.topicPeers(t)
      if (tp.subscribed === 0) {
        if (inGrace) out.push(`topic "${t}": no subscribed peer known yet`)
        continue
      }
      let need = Math.min(this.config.gossipsub.mesh_n_low, tp.subscribed)
      if (need < 1 || this.config.variant !== 'gossipsub') need = 1
      if (tp.mesh < need) out.push(`topic "${t}": ${tp.mesh} mesh peers of ${need} needed (${tp.subscribed} subscribed)`)
    }
    return out
  }

  topicsInfo (topics) {
    const out = {}
    for (const t of topics) out[t] = this.topicPeers(t)
    return out
  }

  async unsubscribe (topics) {
    for (const t of topics) {
      const i = this.subscribed.get(t)
      if (i === undefined) continue
      this.pubsub.unsubscribe(t)
      this.subs[i].to_ns = nowNs()
      this.subscribed.delete(t)
    }
    if (this.subscribed.size === 0 && (this.state === 'subscribed' || this.state === 'ready')) {
      this.setState('connected')
    }
    return null
  }

  async publish (cmd) {
    const topic = cmd.topic
    const count = Number(cmd.count)
    const rate = cmd.rate == null ? null : Number(cmd.rate)
    const waitStart = Date.now()
    const peerDeadline = waitStart + Number(cmd.peer_timeout_ms ?? 0)
    while (this.pubsub.getSubscribers(topic).length === 0 && Date.now() < peerDeadline) {
      if (this.stopping) throw new Cancelled('cancelled: the node is stopping')
      await sleep(POLL_MS)
    }
    const info = { peer_wait_ms: Date.now() - waitStart, peers: this.pubsub.getSubscribers(topic).length }
    if (this.publishing === 0) this.idleState = this.state
    this.publishing++
    this.setState('running')
    const start = performance.now()
    let done = 0
    try {
      for (let i = 0; i < count; i++) {
        if (rate != null && rate > 0) {
          const wait = start + (i / rate) * 1000 - performance.now()
          if (wait > 0) await sleep(wait)
        }
        if (this.stopping) {
          const err = new Cancelled(`cancelled after ${done} of ${count} messages: the node is stopping`)
          err.info = { ...info, published: done }
          throw err
        }
        const seq = this.nextSeq++
        const at = nowNs()
        const data = encodeHeader({ origin: this.config.index, seq, publishNs: at }, Number(cmd.size))
        try {
          await this.pubsub.publish(topic, data)
        } catch (e) {
          const err = new Error(`publish seq ${seq}: ${e.message}`)
          err.info = { ...info, published: done }
          throw err
        }
        this.published.push({ seq, topic, at_ns: at })
        done++
      }
    } finally {
      this.publishing--
      if (this.publishing === 0 && this.state === 'running') this.setState(this.idleState)
    }
    return { ...info, published: done, publish_ms: Math.round(performance.now() - start) }
  }

  /**
   * Ends the node: drain, final result, close; resolves run() with the exit code.
   * @param {'finished'|'aborted'|'error'} exit
   */
  async stop (exit, reason, finishId) {
    if (this.stopping) return
    this.stopping = true
    if (exit === 'error') {
      this.log(`failed: ${reason}`)
      this.setState('failed', reason)
    } else {
      this.setState('draining', reason)
    }
    if (this.snapshotTimer != null) clearInterval(this.snapshotTimer)
    const drained = Promise.allSettled([...this.inflight])
    const timedOut = await Promise.race([drained.then(() => false), sleep(DRAIN_TIMEOUT_MS).then(() => true)])
    if (timedOut) this.log(`commands still running after ${DRAIN_TIMEOUT_MS} ms; sending the result anyway`)
    let result
    try {
      result = this.result(exit, reason)
    } catch (err) {
      this.log(`cannot build the full result: ${err.message}`)
      result = this.minimalResult(exit, reason)
    }
    if (exit !== 'error') this.setState('done')
    if (finishId != null) this.ack(finishId, null, null)
    result.timeline = [...this.timeline]
    await this.ctrl.sendFinal({ type: 'result', ...result })
    if (this.rec != null && this.rec.malformed > 0) this.log(`${this.rec.malformed} malformed payloads`)
    if (this.libp2p != null) {
      await Promise.race([this.libp2p.stop().catch(() => {}), sleep(1000)])
    }
    this.exit(exit === 'finished' ? EXIT_OK : exit === 'aborted' ? EXIT_ABORTED : EXIT_FAILED)
  }

  minimalResult (exit, reason) {
    const rss = rssBytes()
    const r = {
      index: this.env.index,
      peer_id: this.peerId.toString(),
      exit,
      latency: [],
      published: [],
      seen: [],
      subscriptions: [],
      received: 0,
      duplicates: 0,
      peak_rss_bytes: rss.peak,
      final_rss_bytes: rss.current,
      cpu_ns: cpuNs(),
      timeline: []
    }
    if (exit === 'error') r.error = reason
    return r
  }

  result (exit, reason) {
    const r = this.minimalResult(exit, reason)
    if (this.libp2p == null) return r
    const snap = this.takeSnapshot()
    r.latency = this.rec.latency()
    r.seen = this.rec.seenRanges()
    r.received = this.rec.received
    r.duplicates = this.rec.duplicates
    r.published = [...this.published]
    r.subscriptions = [...this.subs]
    r.last_snapshot = snap
    return r
  }
}

/** GossipsubParams::default(), for fields a welcome leaves out. */
export const DEFAULT_GOSSIPSUB = {
  mesh_n: 6,
  mesh_n_low: 5,
  mesh_n_high: 12,
  mesh_outbound_min: 2,
  gossip_lazy: 6,
  gossip_factor: 0.25,
  heartbeat: '1s',
  heartbeat_initial_delay: '100ms',
  history_length: 5,
  history_gossip: 3,
  fanout_ttl: '1m',
  flood_publish: true,
  validation: 'strict',
  max_transmit_size: 1 << 20
}
