// What the node received: latency per origin group (receive − due, and receive − send), the
// seen set per origin, and the distinct and duplicate delivery counts.
import { decodeHeader } from './payload.js'
import { newLatencyHistogram, recordLatencyNs, encodeHistogram } from './histogram.js'

export const UNKNOWN_GROUP = 0xFFFF

export class Recorder {
  /**
   * @param {number} self own node index: own messages are not recorded
   * @param {number[]} originGroups group of each node index
   */
  constructor (self, originGroups) {
    this.self = self
    this.originGroups = originGroups
    /** @type {Map<number, import('hdr-histogram-js').Histogram>} receive − due: the latency */
    this.hists = new Map()
    /** @type {Map<number, import('hdr-histogram-js').Histogram>} receive − send */
    this.sinceSend = new Map()
    /** @type {Map<number, Set<bigint>>} */
    this.seen = new Map()
    this.received = 0
    this.duplicates = 0
    this.malformed = 0
    this.clamped = 0 // deliveries stamped after their arrival (clock skew): recorded as 0
  }

  /**
   * Records one message delivered to the application. The node's own messages (echoed back
   * by some routers, e.g. floodsub) are ignored.
   * @param {Uint8Array} data
   * @param {bigint} recvNs
   * @returns {import('./payload.js').Header | null} the header of a first delivery (not
   *   malformed, not own, not a duplicate), else null
   */
  deliver (data, recvNs) {
    let h
    try {
      h = decodeHeader(data)
    } catch {
      this.malformed++
      return null
    }
    if (h.origin === this.self) return null
    let seqs = this.seen.get(h.origin)
    if (seqs === undefined) {
      seqs = new Set()
      this.seen.set(h.origin, seqs)
    }
    if (seqs.has(h.seq)) {
      this.duplicates++
      return null
    }
    seqs.add(h.seq)
    this.received++
    const group = h.origin < this.originGroups.length ? this.originGroups[h.origin] : UNKNOWN_GROUP
    if (recvNs < h.dueNs) this.clamped++ // clock skew between hosts: recorded as 0
    recordLatencyNs(histOf(this.hists, group), recvNs - h.dueNs)
    recordLatencyNs(histOf(this.sinceSend, group), recvNs - h.sendNs)
    return h
  }

  /** One encoded histogram per origin group with samples, by group: receive − due. */
  latency () {
    return encodeGroups(this.hists)
  }

  /** The same for receive − send. */
  latencySinceSend () {
    return encodeGroups(this.sinceSend)
  }

  /** Per origin (ascending), the sorted inclusive ranges of seqs seen. */
  seenRanges () {
    return [...this.seen.keys()].sort((a, b) => a - b)
      .map((o) => ({ origin: o, ranges: toRanges(this.seen.get(o)) }))
  }
}

function histOf (map, group) {
  let h = map.get(group)
  if (h === undefined) {
    h = newLatencyHistogram()
    map.set(group, h)
  }
  return h
}

function encodeGroups (map) {
  return [...map.keys()].sort((a, b) => a - b)
    .map((g) => ({ origin_group: g, hdr: encodeHistogram(map.get(g)) }))
}

/** @param {Set<bigint>} set */
export function toRanges (set) {
  const seqs = [...set].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  /** @type {[bigint, bigint][]} */
  const ranges = []
  for (const s of seqs) {
    const last = ranges[ranges.length - 1]
    if (last !== undefined && last[1] + 1n === s) last[1] = s
    else ranges.push([s, s])
  }
  return ranges
}
