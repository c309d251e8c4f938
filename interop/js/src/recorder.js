// What the node received: latency per origin group, the seen set per origin, and the
// distinct and duplicate delivery counts.
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
    /** @type {Map<number, import('hdr-histogram-js').Histogram>} */
    this.hists = new Map()
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
   */
  deliver (data, recvNs) {
    let h
    try {
      h = decodeHeader(data)
    } catch {
      this.malformed++
      return
    }
    if (h.origin === this.self) return
    let seqs = this.seen.get(h.origin)
    if (seqs === undefined) {
      seqs = new Set()
      this.seen.set(h.origin, seqs)
    }
    if (seqs.has(h.seq)) {
      this.duplicates++
      return
    }
    seqs.add(h.seq)
    this.received++
    const group = h.origin < this.originGroups.length ? this.originGroups[h.origin] : UNKNOWN_GROUP
    let hist = this.hists.get(group)
    if (hist === undefined) {
      hist = newLatencyHistogram()
      this.hists.set(group, hist)
    }
    if (recvNs < h.publishNs) this.clamped++
    recordLatencyNs(hist, recvNs - h.publishNs)
  }

  /** One encoded histogram per origin group with samples, by group. */
  latency () {
    return [...this.hists.keys()].sort((a, b) => a - b)
      .map((g) => ({ origin_group: g, hdr: encodeHistogram(this.hists.get(g)) }))
  }

  /** Per origin (ascending), the sorted inclusive ranges of seqs seen. */
  seenRanges () {
    return [...this.seen.keys()].sort((a, b) => a - b)
      .map((o) => ({ origin: o, ranges: toRanges(this.seen.get(o)) }))
  }
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
