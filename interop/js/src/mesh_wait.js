// The mesh wait of `subscribe` with wait_mesh (docs/node-contract.md §5), as the Rust node's
// node/src/mesh_wait.rs does it.
//
// A topic's target is min(mesh_n_low, known subscribed peers) (floodsub: min(1, subscribed),
// its "mesh" being every subscribed peer). A topic's mesh is complete when its target is at
// least 1 and the mesh reaches it; the node is meshed when every topic is complete. Right after a subscribe the peers' own subscriptions are still
// arriving, so a mesh below mesh_n_low is only accepted once the grace (about a heartbeat) is
// over. Two cases end the wait without a mesh, acked ok with meshed false so the run goes on
// and the report can tell them apart: a topic nobody else subscribes to after the grace, and
// a non-empty mesh below its target that has not changed for STUCK_GRACES grace periods (a
// peer whose mesh is full prunes our GRAFT and is off limits for the prune backoff).

/** Grace periods an unchanged, non-empty mesh below its target must last to be accepted. */
export const STUCK_GRACES = 3

/**
 * @typedef {{ mesh: number, subscribed: number }} TopicPeers
 * @typedef {{ mesh: number, subscribed: number, target: number }} TopicMesh
 * @typedef {{ mesh_ms?: number, meshed: boolean, topics: Record<string, TopicMesh> }} MeshOutcome
 *   the result's `mesh`: mesh_ms only when meshed
 */

/** The subscribe ack's info: the outcome with mesh_ms null when not meshed. */
export function ackInfo (outcome) {
  return { mesh_ms: outcome.mesh_ms ?? null, meshed: outcome.meshed, topics: outcome.topics }
}

export class MeshWait {
  /**
   * @param {string[]} topics
   * @param {number} now ms
   * @param {number} timeoutMs
   * @param {number} graceMs
   * @param {number} fullMesh mesh_n_low (gossipsub), 1 (floodsub): a mesh as good as it gets
   */
  constructor (topics, now, timeoutMs, graceMs, fullMesh) {
    this.topics = topics
    this.started = now
    this.deadline = now + timeoutMs
    this.graceUntil = now + graceMs
    this.fullMesh = Math.max(fullMesh, 1)
    this.stuckAfter = graceMs * STUCK_GRACES
    /** since when every topic has been meshed without interruption (null: not now) */
    this.meshedSince = null
    /** @type {Map<string, {mesh: number, since: number}>} */
    this.lastChange = new Map()
  }

  /**
   * Looks at the topics' counts now.
   * @param {number} now ms
   * @param {(topic: string) => TopicPeers} counts
   * @returns {{ status: 'waiting' | 'done' | 'timed_out', outcome: MeshOutcome, error?: string, wentAhead?: string[] }}
   *   wentAhead: for 'done', the topics the node goes ahead without a mesh on
   */
  evaluate (now, counts) {
    const inGrace = now < this.graceUntil
    /** @type {MeshOutcome} */
    const outcome = { meshed: false, topics: {} }
    const missing = []
    const wentAhead = []
    let allMeshed = true
    let settled = true
    for (const t of this.topics) {
      const c = counts(t)
      const target = Math.min(this.fullMesh, c.subscribed)
      let last = this.lastChange.get(t)
      if (last === undefined || last.mesh !== c.mesh) {
        last = { mesh: c.mesh, since: now }
        this.lastChange.set(t, last)
      }
      const meshed = target >= 1 && c.mesh >= target
      const stuck = !inGrace && c.mesh >= 1 && now - last.since >= this.stuckAfter
      const alone = c.subscribed === 0 && !inGrace
      if (meshed) {
        // complete
      } else if (alone) {
        wentAhead.push(`topic ${JSON.stringify(t)}: no subscribed peer`)
      } else if (stuck) {
        wentAhead.push(`topic ${JSON.stringify(t)}: mesh stuck at ${c.mesh} of ${target}`)
      } else {
        missing.push(`topic ${JSON.stringify(t)}: ${c.mesh} mesh peer(s) of ${Math.max(target, 1)} needed, ${c.subscribed} subscribed peer(s) known`)
      }
      allMeshed &&= meshed
      // A full mesh is final; a smaller one may only mean subscriptions still arrive.
      settled &&= c.mesh >= this.fullMesh || !inGrace
      outcome.topics[t] = { mesh: c.mesh, subscribed: c.subscribed, target }
    }
    this.meshedSince = allMeshed ? (this.meshedSince ?? now) : null
    const atDeadline = now >= this.deadline
    if (missing.length === 0 && (settled || atDeadline)) {
      if (allMeshed) {
        outcome.mesh_ms = this.meshedSince - this.started
        outcome.meshed = true
      }
      return { status: 'done', outcome, wentAhead }
    }
    if (atDeadline) {
      return { status: 'timed_out', outcome, error: `no mesh within ${this.deadline - this.started} ms: ${missing.join('; ')}` }
    }
    return { status: 'waiting', outcome }
  }
}
