package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
)

// payloadVector is one of interop/fixtures/payload-vectors.json: the same bytes are checked
// by the Rust contract (interop/check-histograms) and the JS node's tests.
type payloadVector struct {
	Name   string `json:"name"`
	Origin uint32 `json:"origin"`
	Seq    uint64 `json:"seq"`
	SendNs uint64 `json:"send_ns"`
	DueNs  uint64 `json:"due_ns"`
	Paced  bool   `json:"paced"`
	Trace  *struct {
		TraceID string `json:"trace_id"`
		SpanID  string `json:"span_id"`
		Flags   byte   `json:"flags"`
	} `json:"trace"`
	Size int    `json:"size"`
	Hex  string `json:"hex"`
}

func loadPayloadVectors(t *testing.T) map[string]payloadVector {
	t.Helper()
	text, err := os.ReadFile("../fixtures/payload-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Vectors []payloadVector `json:"vectors"`
	}
	if err := json.Unmarshal(text, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]payloadVector{}
	for _, v := range doc.Vectors {
		out[v.Name] = v
	}
	for _, name := range []string{"layout_1", "layout_2", "layout_2_traced"} {
		if _, ok := out[name]; !ok {
			t.Fatalf("vector %s is missing", name)
		}
	}
	return out
}

func (v payloadVector) header(t *testing.T) header {
	h := header{Origin: v.Origin, Seq: v.Seq, SendNs: v.SendNs, DueNs: v.DueNs, Paced: v.Paced}
	if v.Trace != nil {
		h.Trace = &traceContext{Flags: v.Trace.Flags}
		id, err1 := hex.DecodeString(v.Trace.TraceID)
		span, err2 := hex.DecodeString(v.Trace.SpanID)
		if err1 != nil || err2 != nil || copy(h.Trace.TraceID[:], id) != 16 || copy(h.Trace.SpanID[:], span) != 8 {
			t.Fatalf("bad trace context in vector %s: %+v", v.Name, v.Trace)
		}
	}
	return h
}

func TestPayloadVectors(t *testing.T) {
	for name, v := range loadPayloadVectors(t) {
		want := v.header(t)
		if b, _ := hex.DecodeString(v.Hex); b[2] == layoutVersion {
			if got := hex.EncodeToString(want.encode(v.Size)); got != v.Hex {
				t.Fatalf("%s\n got %s\nwant %s", name, got, v.Hex)
			}
		}
		b, _ := hex.DecodeString(v.Hex)
		got, err := decodeHeader(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.Origin != want.Origin || got.Seq != want.Seq || got.SendNs != want.SendNs ||
			got.DueNs != want.DueNs || got.Paced != want.Paced || (got.Trace == nil) != (want.Trace == nil) ||
			(got.Trace != nil && *got.Trace != *want.Trace) {
			t.Fatalf("%s decodes to %+v, want %+v", name, got, want)
		}
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	h := header{Origin: 7, Seq: 42, SendNs: 1_700_000_000_123_456_789, DueNs: 1_700_000_000_100_000_000, Paced: true}
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
	if err != nil || *back.Trace != *h.Trace || back.Seq != 42 || back.DueNs != h.DueNs {
		t.Fatalf("trace round trip: %+v %v", back, err)
	}
	if _, err := decodeHeader([]byte("PT")); err == nil {
		t.Fatal("a 2-byte message must be refused")
	}
	if _, err := decodeHeader(make([]byte, 60)); err == nil || !strings.Contains(err.Error(), "magic") {
		t.Fatalf("zeros must be refused for their magic: %v", err)
	}
	short := h.encode(headerLen)[:headerLenV1] // a layout-2 header cut to layout 1's length
	if _, err := decodeHeader(short); err == nil || !strings.Contains(err.Error(), "49 bytes, shorter than the 57-byte header") {
		t.Fatalf("a truncated layout 2 header must be refused: %v", err)
	}
	b[2] = 3
	if _, err := decodeHeader(b); err == nil || !strings.Contains(err.Error(), "layout version 3") {
		t.Fatalf("layout 3 must be refused: %v", err)
	}
}

// Latency is receive − due; latency_since_send is receive − send (the publisher's lag is
// the difference).
func TestLatencyFromDueAndSend(t *testing.T) {
	r := newRecorder(0, []uint16{0, 3})
	const ms = uint64(1_000_000)
	base := uint64(1_700_000_000_000_000_000)
	h, first := r.deliver(header{Origin: 1, Seq: 0, DueNs: base, SendNs: base + 40*ms, Paced: true}.encode(64), base+45*ms)
	if !first || h.Seq != 0 {
		t.Fatalf("first delivery not reported: %v %+v", first, h)
	}
	if _, first := r.deliver(header{Origin: 1, Seq: 0, DueNs: base, SendNs: base + 40*ms}.encode(64), base+46*ms); first {
		t.Fatal("a duplicate is not a first delivery")
	}
	lat, since, err := r.latency()
	if err != nil || len(lat) != 1 || len(since) != 1 || lat[0].OriginGroup != 3 || since[0].OriginGroup != 3 {
		t.Fatalf("groups %+v %+v %v", lat, since, err)
	}
	for _, c := range []struct {
		name string
		enc  string
		us   int64
	}{{"latency", lat[0].Hdr, 45_000}, {"latency_since_send", since[0].Hdr, 5_000}} {
		hist, err := hdrhistogram.Decode([]byte(c.enc))
		if err != nil || hist.TotalCount() != 1 || !hist.ValuesAreEquivalent(hist.Max(), c.us) {
			t.Fatalf("%s: %d values, max %d, want %d µs (%v)", c.name, hist.TotalCount(), hist.Max(), c.us, err)
		}
	}
	// A layout-1 message: due = send.
	v1, _ := hex.DecodeString(loadPayloadVectors(t)["layout_1"].Hex)
	if h, first := r.deliver(v1, 3+7_000); !first || h.DueNs != 3 || h.Paced {
		t.Fatalf("layout 1 delivery: %v %+v", first, h)
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
	r.deliver(header{Origin: 0, Seq: 0, SendNs: nowNs()}.encode(64), nowNs()) // own: ignored
	for _, s := range []uint64{0, 1, 2, 5, 7, 6, 2} {
		r.deliver(header{Origin: 2, Seq: s, SendNs: nowNs()}.encode(64), nowNs())
	}
	r.deliver(header{Origin: 9, Seq: 0, SendNs: nowNs()}.encode(64), nowNs())
	r.deliver([]byte("garbage"), nowNs())
	got, _ := json.Marshal(r.seenRanges())
	if string(got) != `[{"origin":2,"ranges":[[0,2],[5,7]]},{"origin":9,"ranges":[[0,0]]}]` {
		t.Fatalf("seen %s", got)
	}
	if rec, dup := r.counts(); rec != 7 || dup != 1 || r.malformed != 1 {
		t.Fatalf("received %d duplicates %d malformed %d", rec, dup, r.malformed)
	}
	lat, _, err := r.latency()
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
	b, _ := json.Marshal(helloMsg{Type: "hello", Protocol: protocolVersion, Index: 3, Pid: 99, Implementation: "go", ImplVersion: "x", Secret: "s3"})
	if string(b) != `{"type":"hello","protocol":2,"index":3,"pid":99,"implementation":"go","impl_version":"x","secret":"s3"}` {
		t.Fatalf("hello %s", b)
	}
	b, _ = json.Marshal(helloMsg{Type: "hello", Protocol: protocolVersion, Index: 3, Pid: 99, Implementation: "go", ImplVersion: "x"})
	if string(b) != `{"type":"hello","protocol":2,"index":3,"pid":99,"implementation":"go","impl_version":"x"}` {
		t.Fatalf("hello without a secret %s", b)
	}
	b, _ = json.Marshal(deliveredMsg{Type: "delivered", Origin: 4, Seq: 1<<64 - 1, AtNs: 9})
	if string(b) != `{"type":"delivered","origin":4,"seq":18446744073709551615,"at_ns":9}` {
		t.Fatalf("delivered %s", b)
	}
	b, _ = json.Marshal(pongMsg{Type: "pong", ID: 7, AtNs: 1_800_000_000_000_000_001})
	if string(b) != `{"type":"pong","id":7,"at_ns":1800000000000000001}` {
		t.Fatalf("pong %s", b)
	}
	due := uint64(5)
	b, _ = json.Marshal([]published{{Seq: 1, Topic: "t", AtNs: 6, DueNs: &due}, {Seq: 2, Topic: "t", AtNs: 7}})
	if string(b) != `[{"seq":1,"topic":"t","at_ns":6,"due_ns":5},{"seq":2,"topic":"t","at_ns":7}]` {
		t.Fatalf("published %s", b)
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
	if err != nil || cfg.Gossipsub.MeshN != 8 || cfg.Gossipsub.MeshNLow != 5 || cfg.Seed != 1<<64-1 ||
		cfg.Security != securityNoise || cfg.ReportDeliveries {
		t.Fatalf("welcome config %+v %v", cfg, err)
	}
	cfg, err = parseWelcomeConfig([]byte(`{"run_id":"r","index":1,"group":"g","variant":"gossipsub","gossipsub":{},"seed":1,"snapshot_interval_ms":0,"origin_groups":[],"security":"plaintext","report_deliveries":true,"some_later_field":1}`))
	if err != nil || cfg.Security != securityPlaintext || !cfg.ReportDeliveries {
		t.Fatalf("welcome config v2 %+v %v", cfg, err)
	}
	if _, err := parseWelcomeConfig([]byte(`{"index":1,"security":"tls"}`)); err == nil || !strings.Contains(err.Error(), "config.security") {
		t.Fatalf("an unknown security must be refused: %v", err)
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

// Real hosts over loopback TCP: plaintext connects to plaintext, and a plaintext dial to a
// noise host fails with an error that names the security mismatch.
func TestSecurityMustMatch(t *testing.T) {
	mk := func(security string) host.Host {
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		h, err := newHost(key, "127.0.0.1", metrics.NewBandwidthCounter(), security)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	plain, plain2, noisy := mk(securityPlaintext), mk(securityPlaintext), mk(securityNoise)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := plain.Connect(ctx, peer.AddrInfo{ID: plain2.ID(), Addrs: plain2.Addrs()}); err != nil {
		t.Fatalf("plaintext to plaintext: %v", err)
	}
	err := explainDialError(plain.Connect(ctx, peer.AddrInfo{ID: noisy.ID(), Addrs: noisy.Addrs()}), securityPlaintext)
	if err == nil || !strings.Contains(err.Error(), "security mismatch: this node uses plaintext security") {
		t.Fatalf("plaintext to noise: %v", err)
	}
}

// The control reader answers a ping itself, with the time the line was read, and passes other
// messages on; nobody needs to read the message channel for the pong to go out.
func TestPingAnsweredByTheReader(t *testing.T) {
	nodeEnd, orchEnd := net.Pipe()
	c := &control{conn: nodeEnd, w: bufio.NewWriter(nodeEnd)}
	msgs, bad := make(chan orchMsg, 1), make(chan error, 1)
	go c.readLoop(msgs, bad)
	before := nowNs()
	go func() {
		_, _ = orchEnd.Write([]byte("{\"type\":\"ping\",\"id\":18446744073709551615}\n{\"type\":\"released\",\"barrier\":\"b\",\"count\":1}\n"))
	}()
	line, err := bufio.NewReader(orchEnd).ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var pong pongMsg
	if err := json.Unmarshal(line, &pong); err != nil || pong.Type != "pong" || pong.ID != 1<<64-1 || pong.AtNs < before || pong.AtNs > nowNs() {
		t.Fatalf("pong %s: %+v %v", line, pong, err)
	}
	if m := <-msgs; m.Type != "released" {
		t.Fatalf("next message %+v", m)
	}
	_ = orchEnd.Close()
}
