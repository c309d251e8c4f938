// A pubsub-testbed node on js-libp2p: the contract (docs/node-contract.md) as a state
// machine driven by the orchestrator's messages.
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { Recorder } from './recorder.js'
import { MeshWait, ackInfo } from './mesh_wait.js'
import { newLatencyHistogram, recordLatencyNs, encodeHistogram } from './histogram.js'
import { encodeHeader } from './payload.js'
import { newLibp2p, implVersion } from './libp2p.js'
import { parseHumanDuration } from './duration.js'
import { rssBytes, cpuNs } from './procstat.js'
import { nowNs } from './clock.js'

export const PROTOCOL_VERSION = 2

// Exit codes (docs/node-contract.md, "Exit codes"), the same in every implementation.
export const EXIT_OK = 0 // finished, or aborted by the orchestrator; the result was sent
export const EXIT_FAILED = 1 // the node failed; a result with exit "error" was sent if possible
export const EXIT_USAGE = 2 // the environment is incomplete or invalid (see stderr)
export const EXIT_CONTROL = 3 // the control channel could not be opened, or it was lost
export const EXIT_SIGNAL = { SIGINT: 130, SIGTERM: 143 } // result with exit "aborted" sent

// The lifecycle's order: states only move forward (a second connect or a subscribe while
// publishing does not move the timeline back), or to failed from anywhere.
const STATE_ORDER = ['starting', 'listening', 'connected', 'subscribed', 'ready', 'running', 'draining', 'done', 'failed']

// Timing (docs/node-contract.md, "Timing").
const WELCOME_TIMEOUT_MS = 60_000
const DIAL_TIMEOUT_MS = 30_000
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
    this.lastSnapshot = null
    this.lag = newLatencyHistogram() // send − due per published message (µs)
    this.mesh = null // the last subscribe-with-wait_mesh's outcome
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
    if (this.state === 'done' || this.state === 'failed') return
    if (state !== 'failed' && this.state != null && STATE_ORDER.indexOf(state) <= STATE_ORDER.indexOf(this.state)) return
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
      impl_version: implVersion(),
      ...(this.env.secret !== '' ? { secret: this.env.secret } : {})
    })
    this.setState('starting')
    this.ctrl.listen(
      (msg) => { this.handle(msg).catch((err) => this.stop('error', `internal error: ${err.stack ?? err}`)) },
      (text) => this.log(`${text} (ignored)`),
      () => {
        if (!this.stopping) {
          this.log('the orchestrator closed the control channel; exiting')
          this.stopping = true
          this.exit(EXIT_CONTROL)
        }
      }
    )
    for (const sig of ['SIGTERM', 'SIGINT']) {
      process.on(sig, () => { this.stop('aborted', `stopped by ${sig}`, null, EXIT_SIGNAL[sig]) })
    }
    const welcomeTimer = setTimeout(() => {
      if (this.config == null) this.stop('error', `no welcome within ${WELCOME_TIMEOUT_MS / 1000}s`)
    }, WELCOME_TIMEOUT_MS)
    welcomeTimer.unref()
    return done
  }

  async handle (msg) {
    if (msg.type === 'ping') {
      // At once, with the wall clock when the line was read; also while draining (after the
      // result the channel is closed and this is a no-op).
      this.ctrl.send({ type: 'pong', id: msg.id, at_ns: nowNs() })
      return
    }
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
        await this.stop('aborted', `aborted by the orchestrator: ${msg.reason}`)
        return
      case 'released':
        return // no command makes this node signal
      case 'command': {
        const cmd = msg.cmd ?? {}
        if (this.starting != null) await this.starting.catch(() => {})
        if (this.config == null || this.libp2p == null) {
          this.ack(msg.id, null, new Error(`command "${cmd.op}" before welcome`))
          return
        }
        if (cmd.op === 'finish') {
          await this.stop('finished', null, msg.id)
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
    config.security ??= 'noise'
    if (config.security !== 'noise' && config.security !== 'plaintext') {
      throw new Error(`config.security ${JSON.stringify(config.security)}: expected noise or plaintext`)
    }
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
      if (!this.subscribed.has(m.topic)) return
      const at = nowNs()
      const h = this.rec.deliver(m.data, at)
      if (h != null && config.report_deliveries === true) {
        this.ctrl.send({ type: 'delivered', origin: h.origin, seq: h.seq, at_ns: at })
      }
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
        failures.push(`node ${p.index} (${p.peer_id} at ${p.addr}): ${explainDialError(err.message, this.config.security)}`)
      }
    }))
    failures.sort()
    const ok = peers.length - failures.length
    this.setState('connected')
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
    if (!cmd.wait_mesh) return null
    const fullMesh = this.config.variant === 'gossipsub' ? this.config.gossipsub.mesh_n_low : 1
    const wait = new MeshWait(topics, start, Number(cmd.mesh_timeout_ms ?? 0), subscribeGrace(this.config.gossipsub), fullMesh)
    for (;;) {
      const { status, outcome, error, wentAhead } = wait.evaluate(Date.now(), (t) => this.topicPeers(t))
      if (status !== 'waiting') this.mesh = outcome
      if (status === 'done') {
        this.setState('ready', wentAhead.length > 0 ? `went ahead without a mesh: ${wentAhead.join('; ')}` : undefined)
        return ackInfo(outcome)
      }
      if (status === 'timed_out') {
        const err = new Error(error)
        err.info = ackInfo(outcome)
        throw err
      }
      if (this.stopping) throw new Cancelled('cancelled: the node is stopping')
      await sleep(POLL_MS)
    }
  }

  async unsubscribe (topics) {
    let closed = 0
    for (const t of topics) {
      const i = this.subscribed.get(t)
      if (i === undefined) continue
      this.pubsub.unsubscribe(t)
      this.subs[i].to_ns = nowNs()
      this.subscribed.delete(t)
      closed++
    }
    return { unsubscribed: closed }
  }

  async publish (cmd) {
    const topic = cmd.topic
    const count = Number(cmd.count)
    const rate = cmd.rate == null ? null : Number(cmd.rate)
    const started = performance.now()
    // Wait until some peer subscribed to the topic is known; none by the timeout: fail.
    const peerDeadline = Date.now() + Number(cmd.peer_timeout_ms ?? 0)
    while (this.pubsub.getSubscribers(topic).length === 0) {
      if (Date.now() >= peerDeadline) {
        const err = new Error(`no peer subscribed to topic ${JSON.stringify(topic)} within ${cmd.peer_timeout_ms} ms; published nothing`)
        err.info = { published: 0 }
        throw err
      }
      if (this.stopping) throw new Cancelled('cancelled: the node is stopping')
      await sleep(POLL_MS)
    }
    // Message i is due at sendStart + i/rate (paced) or as soon as it can go (back to back,
    // due = send). Scheduling against sendStart, not the previous send, keeps the rate from
    // drifting, and a late message carries its due time: latency counts the publisher's lag.
    const sendStart = performance.now()
    const sendStartNs = nowNs()
    const paced = rate != null && rate > 0
    let done = 0
    const failed = (why) => {
      const err = new Error(`published ${done} of ${count} on topic ${JSON.stringify(topic)}, then: ${why}`)
      err.info = { published: done }
      return err
    }
    for (let i = 0; i < count; i++) {
      let dueNs = null
      if (paced) {
        const offsetMs = (i / rate) * 1000
        dueNs = sendStartNs + BigInt(Math.round(offsetMs * 1e6))
        // Node's timers may fire up to a millisecond early: never send before the due time.
        for (let wait; (wait = sendStart + offsetMs - performance.now()) > 0;) await sleep(wait)
      }
      if (this.stopping) throw failed('the node is stopping')
      const seq = this.nextSeq++
      // @libp2p/gossipsub (allowPublishToZeroTopicPeers) and @libp2p/floodsub never refuse a
      // publish for a passing reason, so there is no retry; the due time is fixed above.
      const at = nowNs()
      const data = encodeHeader({ origin: this.config.index, seq, sendNs: at, dueNs: dueNs ?? at, paced }, Number(cmd.size))
      try {
        await this.pubsub.publish(topic, data)
      } catch (e) {
        throw failed(e.message)
      }
      const p = { seq, topic, at_ns: at }
      if (paced) p.due_ns = dueNs
      this.published.push(p)
      recordLatencyNs(this.lag, at - (dueNs ?? at))
      done++
      this.setState('running')
    }
    return { published: done, elapsed_ms: Math.round(performance.now() - started) }
  }

  /**
   * Ends the node: drain, final result, close; resolves run() with the exit code.
   * @param {'finished'|'aborted'|'error'} exit
   * @param {string} reason
   * @param {number|null} [finishId] id of the finish command, acked just before the result
   * @param {number} [code] exit code, when not the one exit implies
   */
  async stop (exit, reason, finishId, code) {
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
    if (finishId != null) this.ack(finishId, this.countersInfo(), null)
    result.timeline = [...this.timeline]
    await this.ctrl.sendFinal({ type: 'result', ...result })
    if (this.rec != null && this.rec.malformed > 0) this.log(`${this.rec.malformed} malformed payloads`)
    if (this.libp2p != null) {
      await Promise.race([this.libp2p.stop().catch(() => {}), sleep(1000)])
    }
    this.exit(code ?? (exit === 'error' ? EXIT_FAILED : EXIT_OK))
  }

  /** Counters the result has no field for, sent in the finish ack (as the Rust node does). */
  countersInfo () {
    return {
      malformed_payloads: this.rec?.malformed ?? 0,
      clamped_latencies: this.rec?.clamped ?? 0
    }
  }

  minimalResult (exit, reason) {
    const rss = rssBytes()
    const r = {
      index: this.env.index,
      peer_id: this.peerId.toString(),
      exit,
      latency: [],
      latency_since_send: [],
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
    if (exit !== 'finished' && reason) r.error = reason
    return r
  }

  result (exit, reason) {
    const r = this.minimalResult(exit, reason)
    if (this.libp2p == null) return r
    const snap = this.takeSnapshot()
    r.latency = this.rec.latency()
    r.latency_since_send = this.rec.latencySinceSend()
    if (this.published.length > 0) r.publish_lag = encodeHistogram(this.lag)
    if (this.mesh != null) r.mesh = this.mesh
    r.seen = this.rec.seenRanges()
    r.received = this.rec.received
    r.duplicates = this.rec.duplicates
    r.published = [...this.published]
    r.subscriptions = [...this.subs]
    r.last_snapshot = snap
    return r
  }
}

/**
 * Names a security mismatch, which js-libp2p reports as a failed protocol selection of the
 * connection encrypter.
 */
export function explainDialError (message, security) {
  if (/could not negotiate \/(noise|plaintext\/)/.test(message)) {
    return `${message} (security mismatch: this node uses ${security} security and the peer offers none it knows; every connected node must use the same security)`
  }
  return message
}

/**
 * How long a subscribe with wait_mesh treats a small mesh as possibly still growing (peers'
 * subscriptions are still arriving): heartbeat_initial_delay + heartbeat, at least 1 s.
 */
export function subscribeGrace (gp) {
  try {
    return Math.max(1000, parseHumanDuration(gp.heartbeat) + parseHumanDuration(gp.heartbeat_initial_delay))
  } catch {
    return 1000
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
