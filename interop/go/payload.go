package main

import (
	"encoding/binary"
	"fmt"
)

// Payload layout v1 (contract/src/payload.rs), all integers big-endian:
//
//	offset size field
//	 0     2    magic "PT"
//	 2     1    layout version (1)
//	 3     1    flags: bit 0 = trace context present
//	 4     4    origin node index (u32)
//	 8     8    sequence number, per origin, from 0 (u64)
//	16     8    publish time, ns since the Unix epoch (u64)
//	24    16    W3C trace id (zero when absent)
//	40     8    W3C parent span id (zero when absent)
//	48     1    W3C trace flags
//	49     ..   padding (zero bytes) up to the configured message size
const (
	headerLen     = 49
	layoutVersion = 1
	flagTrace     = 1
)

type traceContext struct {
	TraceID [16]byte
	SpanID  [8]byte
	Flags   byte
}

type header struct {
	Origin    uint32
	Seq       uint64
	PublishNs uint64
	Trace     *traceContext
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
	binary.BigEndian.PutUint64(out[16:], h.PublishNs)
	if h.Trace != nil {
		out[3] = flagTrace
		copy(out[24:40], h.Trace.TraceID[:])
		copy(out[40:48], h.Trace.SpanID[:])
		out[48] = h.Trace.Flags
	}
	return out
}

func decodeHeader(b []byte) (header, error) {
	if len(b) < headerLen {
		return header{}, fmt.Errorf("message is %d bytes, shorter than the %d-byte header", len(b), headerLen)
	}
	if b[0] != 'P' || b[1] != 'T' {
		return header{}, fmt.Errorf("message does not start with the magic bytes \"PT\"")
	}
	if b[2] != layoutVersion {
		return header{}, fmt.Errorf("unknown payload layout version %d", b[2])
	}
	h := header{
		Origin:    binary.BigEndian.Uint32(b[4:]),
		Seq:       binary.BigEndian.Uint64(b[8:]),
		PublishNs: binary.BigEndian.Uint64(b[16:]),
	}
	if b[3]&flagTrace != 0 {
		t := &traceContext{Flags: b[48]}
		copy(t.TraceID[:], b[24:40])
		copy(t.SpanID[:], b[40:48])
		h.Trace = t
	}
	return h, nil
}
