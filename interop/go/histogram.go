package main

import (
	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency histograms (contract/src/histogram.rs): microseconds, 1 µs .. 1 h, 3 significant
// figures, sent as HDR V2 compressed (zlib) encoding in standard padded base64.
const (
	maxLatencyUs = 3_600_000_000
	sigfig       = 3
)

func newLatencyHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, maxLatencyUs, sigfig)
}

// recordLatencyNs records a receive − publish difference in ns, in whole µs, clamped to
// [0, maxLatencyUs] (a negative value means clock skew between hosts).
func recordLatencyNs(h *hdrhistogram.Histogram, ns int64) {
	us := ns / 1000
	if us < 0 {
		us = 0
	}
	if us > maxLatencyUs {
		us = maxLatencyUs
	}
	_ = h.RecordValue(us)
}

// encodeHistogram returns the V2 compressed encoding in base64 (hdrhistogram-go already
// base64-encodes it).
func encodeHistogram(h *hdrhistogram.Histogram) (string, error) {
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
