package main

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
)

// The fixed vector of contract/src/payload.rs known_vector: the Rust and JS nodes check the
// same bytes.
const knownVector = "50540100000000010000000000000002000000000000000300000000000000000000000000000000000000000000000000"

func TestPayloadKnownVector(t *testing.T) {
	got := hex.EncodeToString(header{Origin: 1, Seq: 2, PublishNs: 3}.encode(headerLen))
	if got != knownVector {
		t.Fatalf("payload vector\n got %s\nwant %s", got, knownVector)
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	h := header{Origin: 7, Seq: 42, PublishNs: 1_700_000_000_123_456_789}
	b := h.encode(256)
	if len(b) != 256 {
		t.Fatalf("len %d", len(b))
	}
	back, err := decodeHeader(b)
	if err != nil || back != h {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	h.Trace = &traceContext{Flags: 1}
	for i := range h.Trace.TraceID {
		h.Trace.TraceID[i] = 1
	}
	for i := range h.Trace.SpanID {
		h.Trace.SpanID[i] = 2
	}
	b = h.encode(10)
	if len(b) != headerLen {
		t.Fatalf("short size must give the header alone, got %d bytes", len(b))
	}
	back, err = decodeHeader(b)
	if err != nil || *back.Trace != *h.Trace || back.Seq != 42 {
		t.Fatalf("trace round trip: %+v %v", back, err)
	}
	if _, err := decodeHeader([]byte("PT")); err == nil {
		t.Fatal("a 2-byte message must be refused")
	}
	if _, err := decodeHeader(make([]byte, 60)); err == nil || !strings.Contains(err.Error(), "magic") {
		t.Fatalf("zeros must be refused for their magic: %v", err)
	}
}

func TestHistogramEncodingIsV2CompressedBase64(t *testing.T) {
	h := newLatencyHistogram()
	for _, v := range []int64{1, 7, 650, 651, 10_000, 2_000_000} {
		recordLatencyNs(h, v*1000)
	}
	recordLatencyNs(h, -5)    // clock skew: 0
	recordLatencyNs(h, 1<<62) // clamped to the maximum
	text, err := encodeHistogram(h)
	if err != nil {
		t.Fatal(err)
	}
	// The compressed V2 cookie 0x1c849314 in base64 starts with "HIST".
	if !strings.HasPrefix(text, "HISTFAAA") {
		t.Fatalf("not a V2 compressed encoding: %s", text[:16])
	}
	back, err := hdrhistogram.Decode([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if back.TotalCount() != 8 || back.Max() != h.Max() || back.ValueAtQuantile(50) != h.ValueAtQuantile(50) {
		t.Fatalf("decoded %d values, max %d", back.TotalCount(), back.Max())
	}
	if back.HighestTrackableValue() != maxLatencyUs || back.SignificantFigures() != sigfig {
		t.Fatalf("bounds %d/%d", back.HighestTrackableValue(), back.SignificantFigures())
	}
}

func TestSeenRangesAndDuplicates(t *testing.T) {
	r := newRecorder(0, []uint16{0, 0, 1})
	r.deliver(header{Origin: 0, Seq: 0, PublishNs: nowNs()}.encode(64), nowNs()) // own: ignored
	for _, s := range []uint64{0, 1, 2, 5, 7, 6, 2} {
		r.deliver(header{Origin: 2, Seq: s, PublishNs: nowNs()}.encode(64), nowNs())
	}
	r.deliver(header{Origin: 9, Seq: 0, PublishNs: nowNs()}.encode(64), nowNs())
	r.deliver([]byte("garbage"), nowNs())
	got, _ := json.Marshal(r.seenRanges())
	if string(got) != `[{"origin":2,"ranges":[[0,2],[5,7]]},{"origin":9,"ranges":[[0,0]]}]` {
		t.Fatalf("seen %s", got)
	}
	if rec, dup := r.counts(); rec != 7 || dup != 1 || r.malformed != 1 {
		t.Fatalf("received %d duplicates %d malformed %d", rec, dup, r.malformed)
	}
	lat, err := r.latency()
	if err != nil || len(lat) != 2 || lat[0].OriginGroup != 1 || lat[1].OriginGroup != unknownGroup {
		t.Fatalf("latency groups %+v %v", lat, err)
	}
}

func TestHumanDurations(t *testing.T) {
	for text, want := range map[string]time.Duration{
		"1s": time.Second, "100ms": 100 * time.Millisecond, "1m": time.Minute,
		"1s 500ms": 1500 * time.Millisecond, "1h 30m": 90 * time.Minute, "2us": 2 * time.Microsecond,
		"1day": 24 * time.Hour,
	} {
		got, err := parseHumanDuration(text)
		if err != nil || got != want {
			t.Errorf("%q: got %v %v, want %v", text, got, err, want)
		}
	}
	for _, bad := range []string{"", "5", "1 parsec", "s"} {
		if _, err := parseHumanDuration(bad); err == nil {
			t.Errorf("%q must be refused", bad)
		}
	}
}

// The wire form of node messages: field names and omitted optionals as the Rust types want.
func TestWireForm(t *testing.T) {
	b, _ := json.Marshal(helloMsg{Type: "hello", Protocol: 1, Index: 3, Pid: 99, Implementation: "go", ImplVersion: "x"})
	if string(b) != `{"type":"hello","protocol":1,"index":3,"pid":99,"implementation":"go","impl_version":"x"}` {
		t.Fatalf("hello %s", b)
	}
	b, _ = json.Marshal(ackMsg{Type: "ack", ID: 5, OK: true})
	if string(b) != `{"type":"ack","id":5,"ok":true}` {
		t.Fatalf("ack %s", b)
	}
	b, _ = json.Marshal(stateMsg{Type: "state", stateChange: stateChange{State: stateReady, AtNs: 7}})
	if string(b) != `{"type":"state","state":"ready","at_ns":7}` {
		t.Fatalf("state %s", b)
	}
	cfg, err := parseWelcomeConfig([]byte(`{"run_id":"r","index":1,"group":"g","variant":"floodsub","gossipsub":{"mesh_n":8},"seed":18446744073709551615,"snapshot_interval_ms":500,"origin_groups":[0,1]}`))
	if err != nil || cfg.Gossipsub.MeshN != 8 || cfg.Gossipsub.MeshNLow != 5 || cfg.Seed != 1<<64-1 {
		t.Fatalf("welcome config %+v %v", cfg, err)
	}
}

// fixtureValues are the latencies (µs) in interop/fixtures/latency-{go,js}.hdr: each
// implementation writes its own fixture (UPDATE_FIXTURES=1) and must read every fixture, and
// interop/check-histograms reads them all with the Rust contract's decoder.
var fixtureValues = []int64{0, 1, 7, 650, 651, 10_000, 2_000_000, maxLatencyUs}

func TestHistogramFixtures(t *testing.T) {
	if os.Getenv("UPDATE_FIXTURES") == "1" {
		h := newLatencyHistogram()
		for _, v := range fixtureValues {
			recordLatencyNs(h, v*1000)
		}
		text, err := encodeHistogram(h)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("../fixtures/latency-go.hdr", []byte(text+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"go", "js"} {
		text, err := os.ReadFile("../fixtures/latency-" + name + ".hdr")
		if err != nil {
			t.Fatal(err)
		}
		h, err := hdrhistogram.Decode([]byte(strings.TrimSpace(string(text))))
		if err != nil {
			t.Fatalf("%s fixture: %v", name, err)
		}
		if h.TotalCount() != int64(len(fixtureValues)) || !h.ValuesAreEquivalent(h.Max(), maxLatencyUs) ||
			!h.ValuesAreEquivalent(h.ValueAtQuantile(50), 650) {
			t.Fatalf("%s fixture: %d values, max %d, p50 %d", name, h.TotalCount(), h.Max(), h.ValueAtQuantile(50))
		}
	}
}

func TestPubsubOptionsAndGrace(t *testing.T) {
	cfg := &nodeConfig{Variant: "gossipsub", Gossipsub: defaultGossipsubParams()}
	for _, mode := range []string{"strict", "permissive", "anonymous", "none"} {
		cfg.Gossipsub.Validation = mode
		if _, err := pubsubOptions(cfg, newMeshTracer()); err != nil {
			t.Errorf("%s: %v", mode, err)
		}
	}
	cfg.Gossipsub.Validation = "bogus"
	if _, err := pubsubOptions(cfg, newMeshTracer()); err == nil || !strings.Contains(err.Error(), "unknown validation mode") {
		t.Errorf("bogus mode: %v", err)
	}
	cfg.Gossipsub.Validation, cfg.Gossipsub.Heartbeat = "strict", "5"
	if _, err := pubsubOptions(cfg, newMeshTracer()); err == nil || !strings.Contains(err.Error(), "gossipsub.heartbeat") {
		t.Errorf("bare number heartbeat: %v", err)
	}
	if g := subscribeGrace(defaultGossipsubParams()); g != 1100*time.Millisecond {
		t.Errorf("grace %v", g)
	}
	if id := payloadMessageID(&pb.Message{Data: header{Origin: 1, Seq: 2}.encode(49)}); id != string([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2}) {
		t.Errorf("anonymous message id %x", id)
	}
}
