package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

const ms = time.Millisecond

// counts gives topic "a" and "b" fixed (mesh, subscribed) counts.
func counts(a, b [2]uint32) func(string) topicPeers {
	return func(t string) topicPeers {
		c := b
		if t == "a" {
			c = a
		}
		return topicPeers{Mesh: c[0], Subscribed: c[1]}
	}
}

func newTestWait(t0 time.Time) *meshWait {
	return newMeshWait([]string{"a", "b"}, t0, 10*time.Second, time.Second, 5)
}

func TestMeshTargetIsMinOfMeshNLowAndSubscribers(t *testing.T) {
	t0 := time.Now()
	w := newTestWait(t0)
	// Two subscribers: two mesh peers reach the target although mesh_n_low is 5, but only
	// once the grace is over (more subscriptions could still arrive).
	if s, _, _, _ := w.evaluate(t0, counts([2]uint32{1, 2}, [2]uint32{2, 2})); s != meshWaiting {
		t.Fatalf("status %v", s)
	}
	if s, _, _, _ := w.evaluate(t0.Add(300*ms), counts([2]uint32{2, 2}, [2]uint32{2, 2})); s != meshWaiting {
		t.Fatalf("status %v", s)
	}
	s, out, _, err := w.evaluate(t0.Add(1000*ms), counts([2]uint32{2, 2}, [2]uint32{2, 2}))
	if s != meshDone || err != nil || !out.Meshed || out.MeshMs == nil || *out.MeshMs != 300 {
		t.Fatalf("status %v %+v %v", s, out, err)
	}
	if out.Topics["a"] != (topicMesh{Mesh: 2, Subscribed: 2, Target: 2}) {
		t.Fatalf("topic a %+v", out.Topics["a"])
	}
	// A full mesh (mesh_n_low) needs no grace.
	w = newTestWait(t0)
	s, out, _, _ = w.evaluate(t0.Add(50*ms), counts([2]uint32{5, 9}, [2]uint32{6, 7}))
	if s != meshDone || !out.Meshed || *out.MeshMs != 50 || out.Topics["b"].Target != 5 {
		t.Fatalf("full mesh: %v %+v", s, out)
	}
}

// A topic nobody else subscribes to goes ahead after the grace, acked ok but not meshed,
// even when the other topic has its mesh.
func TestMeshAloneIsNotMeshed(t *testing.T) {
	t0 := time.Now()
	w := newTestWait(t0)
	if s, _, _, _ := w.evaluate(t0.Add(200*ms), counts([2]uint32{5, 5}, [2]uint32{0, 0})); s != meshWaiting {
		t.Fatalf("in the grace: %v", s)
	}
	s, out, ahead, err := w.evaluate(t0.Add(1100*ms), counts([2]uint32{5, 5}, [2]uint32{0, 0}))
	if s != meshDone || err != nil || out.Meshed || out.MeshMs != nil ||
		strings.Join(ahead, "; ") != `topic "b": no subscribed peer` {
		t.Fatalf("alone: %v %+v %v %v", s, out, ahead, err)
	}
	if out.Topics["b"] != (topicMesh{Mesh: 0, Subscribed: 0, Target: 0}) {
		t.Fatalf("topic b %+v", out.Topics["b"])
	}
	info, _ := json.Marshal(out.ackInfo())
	if string(info) != `{"mesh_ms":null,"meshed":false,"topics":{"a":{"mesh":5,"subscribed":5,"target":5},"b":{"mesh":0,"subscribed":0,"target":0}}}` {
		t.Fatalf("ack info %s", info)
	}
	res, _ := json.Marshal(out)
	if string(res) != `{"meshed":false,"topics":{"a":{"mesh":5,"subscribed":5,"target":5},"b":{"mesh":0,"subscribed":0,"target":0}}}` {
		t.Fatalf("result mesh %s", res)
	}
}

// A non-empty mesh stuck below its target for stuckGraces grace periods goes ahead, not
// meshed; one that keeps changing keeps waiting.
func TestMeshStuckBelowTarget(t *testing.T) {
	t0 := time.Now()
	w := newTestWait(t0)
	stuck := counts([2]uint32{3, 8}, [2]uint32{5, 5})
	for _, at := range []time.Duration{0, 1500 * ms, 2900 * ms} {
		if s, _, _, _ := w.evaluate(t0.Add(at), stuck); s != meshWaiting {
			t.Fatalf("at %v: %v", at, s)
		}
	}
	s, out, ahead, err := w.evaluate(t0.Add(3000*ms), stuck)
	if s != meshDone || err != nil || out.Meshed || out.MeshMs != nil || out.Topics["a"].Target != 5 ||
		strings.Join(ahead, "; ") != `topic "a": mesh stuck at 3 of 5` {
		t.Fatalf("stuck: %v %+v %v %v", s, out, ahead, err)
	}
	w = newTestWait(t0)
	for i, at := range []time.Duration{0, 1000 * ms, 2000 * ms, 3000 * ms, 4000 * ms} {
		s, _, _, _ := w.evaluate(t0.Add(at), counts([2]uint32{uint32(1 + i%2), 8}, [2]uint32{5, 5}))
		if s != meshWaiting {
			t.Fatalf("a changing mesh is not stuck (at %v: %v)", at, s)
		}
	}
}

func TestMeshTimeoutAndFloodsub(t *testing.T) {
	t0 := time.Now()
	w := newTestWait(t0)
	// Subscribers known, no mesh peer at all: not stuck (empty), so it times out.
	s, out, _, err := w.evaluate(t0.Add(10*time.Second), counts([2]uint32{0, 3}, [2]uint32{5, 5}))
	if s != meshTimedOut || err == nil || out.Meshed ||
		!strings.Contains(err.Error(), `no mesh within 10000 ms: topic "a": 0 mesh peer(s) of 3 needed, 3 subscribed peer(s) known`) {
		t.Fatalf("timeout: %v %+v %v", s, out, err)
	}
	// Floodsub: one subscribed peer is the whole target.
	w = newMeshWait([]string{"a"}, t0, time.Second, time.Second, 1)
	s, out, _, _ = w.evaluate(t0.Add(10*ms), func(string) topicPeers { return topicPeers{Mesh: 4, Subscribed: 4} })
	if s != meshDone || !out.Meshed || out.Topics["a"].Target != 1 || *out.MeshMs != 10 {
		t.Fatalf("floodsub: %v %+v", s, out)
	}
	// The mesh time is from the moment every topic was last meshed.
	w = newTestWait(t0)
	w.evaluate(t0.Add(100*ms), counts([2]uint32{2, 2}, [2]uint32{2, 2}))
	w.evaluate(t0.Add(200*ms), counts([2]uint32{1, 2}, [2]uint32{2, 2}))
	s, out, _, _ = w.evaluate(t0.Add(1200*ms), counts([2]uint32{2, 2}, [2]uint32{2, 2}))
	if s != meshDone || *out.MeshMs != 1200 {
		t.Fatalf("mesh_ms after a dip: %v %+v", s, out)
	}
}
