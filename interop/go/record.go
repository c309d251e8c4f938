package main

import (
	"sort"
	"sync"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// unknownGroup is the origin group of an origin index outside config.origin_groups.
const unknownGroup = 0xFFFF

// recorder keeps what the node received: latency per origin group (receive − due, and
// receive − send), the seen set per origin, and the distinct and duplicate delivery counts.
type recorder struct {
	mu           sync.Mutex
	self         uint32 // own node index: own messages are not recorded
	originGroups []uint16
	hists        map[uint16]*hdrhistogram.Histogram // receive − due: the latency
	sinceSend    map[uint16]*hdrhistogram.Histogram // receive − send
	seen         map[uint32]map[uint64]struct{}
	received     uint64
	duplicates   uint64
	malformed    uint64
	clamped      uint64 // deliveries stamped after their arrival (clock skew): recorded as 0
}

func newRecorder(self uint32, originGroups []uint16) *recorder {
	return &recorder{
		self:         self,
		originGroups: originGroups,
		hists:        map[uint16]*hdrhistogram.Histogram{},
		sinceSend:    map[uint16]*hdrhistogram.Histogram{},
		seen:         map[uint32]map[uint64]struct{}{},
	}
}

// deliver records one message delivered to the application at recvNs. The node's own
// messages (echoed back by some routers, e.g. floodsub) are ignored. first says this was the
// message's first delivery (not malformed, not own, not a duplicate).
func (r *recorder) deliver(data []byte, recvNs uint64) (h header, first bool) {
	h, err := decodeHeader(data)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.malformed++
		return h, false
	}
	if h.Origin == r.self {
		return h, false
	}
	seqs := r.seen[h.Origin]
	if seqs == nil {
		seqs = map[uint64]struct{}{}
		r.seen[h.Origin] = seqs
	}
	if _, dup := seqs[h.Seq]; dup {
		r.duplicates++
		return h, false
	}
	seqs[h.Seq] = struct{}{}
	r.received++
	group := uint16(unknownGroup)
	if int(h.Origin) < len(r.originGroups) {
		group = r.originGroups[h.Origin]
	}
	if recvNs < h.DueNs {
		r.clamped++ // clock skew between hosts: the latency is recorded as 0
	}
	recordLatencyNs(histOf(r.hists, group), int64(recvNs)-int64(h.DueNs))
	recordLatencyNs(histOf(r.sinceSend, group), int64(recvNs)-int64(h.SendNs))
	return h, true
}

func histOf(m map[uint16]*hdrhistogram.Histogram, group uint16) *hdrhistogram.Histogram {
	h := m[group]
	if h == nil {
		h = newLatencyHistogram()
		m[group] = h
	}
	return h
}

func (r *recorder) counts() (received, duplicates uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.received, r.duplicates
}

// latency returns one encoded histogram per origin group that has samples, by group:
// receive − due (latency) and receive − send (latencySinceSend).
func (r *recorder) latency() (latency, latencySinceSend []originLatency, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if latency, err = encodeGroups(r.hists); err != nil {
		return nil, nil, err
	}
	latencySinceSend, err = encodeGroups(r.sinceSend)
	return latency, latencySinceSend, err
}

func encodeGroups(hists map[uint16]*hdrhistogram.Histogram) ([]originLatency, error) {
	groups := make([]int, 0, len(hists))
	for g := range hists {
		groups = append(groups, int(g))
	}
	sort.Ints(groups)
	out := []originLatency{}
	for _, g := range groups {
		enc, err := encodeHistogram(hists[uint16(g)])
		if err != nil {
			return nil, err
		}
		out = append(out, originLatency{OriginGroup: uint16(g), Hdr: enc})
	}
	return out, nil
}

// seenRanges returns, per origin (ascending), the sorted inclusive ranges of seqs seen.
func (r *recorder) seenRanges() []seenFrom {
	r.mu.Lock()
	defer r.mu.Unlock()
	origins := make([]int, 0, len(r.seen))
	for o := range r.seen {
		origins = append(origins, int(o))
	}
	sort.Ints(origins)
	out := []seenFrom{}
	for _, o := range origins {
		out = append(out, seenFrom{Origin: uint32(o), Ranges: toRanges(r.seen[uint32(o)])})
	}
	return out
}

func toRanges(set map[uint64]struct{}) [][2]uint64 {
	seqs := make([]uint64, 0, len(set))
	for s := range set {
		seqs = append(seqs, s)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	ranges := [][2]uint64{}
	for _, s := range seqs {
		if n := len(ranges); n > 0 && ranges[n-1][1]+1 == s {
			ranges[n-1][1] = s
		} else {
			ranges = append(ranges, [2]uint64{s, s})
		}
	}
	return ranges
}
