package main

import (
	"encoding/binary"
	"fmt"
)

// Payload layout v2 (contract/src/payload.rs), all integers big-endian:
//
//	offset size field
//	 0     2    magic "PT"
//	 2     1    layout version (2)
//	 3     1    flags: bit 0 = trace context present; bit 1 = paced (due time from a rate schedule)
//	 4     4    origin node index (u32)
//	 8     8    sequence number, per origin, from 0 (u64)
//	16     8    send time, ns since the Unix epoch, when handed to the router (u64)
//	24     8    due time, ns since the Unix epoch, when the schedule said it was due (u64)
//	32    16    W3C trace id (zero when absent)
//	48     8    W3C parent span id (zero when absent)
//	56     1    W3C trace flags
//	57     ..   padding (zero bytes) up to the configured message size
//
// Layout 1 (49 bytes: no due time, trace context at 24) is still read: due = send, not paced.
const (
	headerLen     = 57
	headerLenV1   = 49
	layoutVersion = 2
	flagTrace     = 1
	flagPaced     = 2
)

type traceContext struct {
	TraceID [16]byte
	SpanID  [8]byte
	Flags   byte
}

type header struct {
	Origin uint32
	Seq    uint64
	SendNs uint64
	// DueNs is when the rate schedule said the message was due; for back-to-back
	// publishing it equals SendNs.
	DueNs uint64
	Paced bool
	Trace *traceContext
}

// encode writes the header padded with zeros to size bytes (at least the header).
func (h header) encode(size int) []byte {
	if size < headerLen {
		size = headerLen
	}
	out := make([]byte, size)
	out[0], out[1], out[2] = 'P', 'T', layoutVersion
	binary.BigEndian.PutUint32(out[4:], h.Origin)
	binary.BigEndian.PutUint64(out[8:], h.Seq)
	binary.BigEndian.PutUint64(out[16:], h.SendNs)
	binary.BigEndian.PutUint64(out[24:], h.DueNs)
	if h.Paced {
		out[3] |= flagPaced
	}
	if h.Trace != nil {
		out[3] |= flagTrace
		copy(out[32:48], h.Trace.TraceID[:])
		copy(out[48:56], h.Trace.SpanID[:])
		out[56] = h.Trace.Flags
	}
	return out
}

// decodeHeader reads layout 2, or layout 1 (due = send, not paced).
func decodeHeader(b []byte) (header, error) {
	if len(b) < 3 {
		return header{}, fmt.Errorf("message is %d bytes, shorter than the %d-byte header", len(b), headerLen)
	}
	if b[0] != 'P' || b[1] != 'T' {
		return header{}, fmt.Errorf("message does not start with the magic bytes \"PT\"")
	}
	var need, traceAt int
	switch b[2] {
	case 1:
		need, traceAt = headerLenV1, 24
	case layoutVersion:
		need, traceAt = headerLen, 32
	default:
		return header{}, fmt.Errorf("unknown payload layout version %d", b[2])
	}
	if len(b) < need {
		return header{}, fmt.Errorf("message is %d bytes, shorter than the %d-byte header", len(b), need)
	}
	h := header{
		Origin: binary.BigEndian.Uint32(b[4:]),
		Seq:    binary.BigEndian.Uint64(b[8:]),
		SendNs: binary.BigEndian.Uint64(b[16:]),
	}
	h.DueNs = h.SendNs
	if b[2] == layoutVersion {
		h.DueNs = binary.BigEndian.Uint64(b[24:])
		h.Paced = b[3]&flagPaced != 0
	}
	if b[3]&flagTrace != 0 {
		t := &traceContext{Flags: b[traceAt+24]}
		copy(t.TraceID[:], b[traceAt:traceAt+16])
		copy(t.SpanID[:], b[traceAt+16:traceAt+24])
		h.Trace = t
	}
	return h, nil
}
