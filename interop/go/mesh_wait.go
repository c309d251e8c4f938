package main

import (
	"fmt"
	"strings"
	"time"
)

// The mesh wait of `subscribe` with wait_mesh (docs/node-contract.md §5), as the Rust node's
// node/src/mesh_wait.rs does it.
//
// A topic's target is min(mesh_n_low, known subscribed peers) (floodsub: min(1, subscribed),
// its "mesh" being every subscribed peer). A topic's mesh is complete when its target is at
// least 1 and the mesh reaches it; the node is meshed when every topic is complete. Right after a subscribe the peers' own subscriptions are still
// arriving, so a mesh below mesh_n_low is only accepted once the grace (about a heartbeat) is
// over. Two cases end the wait without a mesh, acked ok with meshed false so the run goes on
// and the report can tell them apart: a topic nobody else subscribes to after the grace, and
// a non-empty mesh below its target that has not changed for stuckGraces grace periods (a
// peer whose mesh is full prunes our GRAFT and is off limits for the prune backoff).

// stuckGraces is how many grace periods an unchanged, non-empty mesh below its target must
// last to be taken as the mesh this node gets.
const stuckGraces = 3

// topicMesh is one topic's part of the outcome.
type topicMesh struct {
	Mesh       uint32 `json:"mesh"`
	Subscribed uint32 `json:"subscribed"`
	Target     uint32 `json:"target"`
}

// meshOutcome is the result's `mesh` (the last subscribe's outcome); the ack's info carries
// the same with mesh_ms null when not meshed.
type meshOutcome struct {
	MeshMs *uint64              `json:"mesh_ms,omitempty"`
	Meshed bool                 `json:"meshed"`
	Topics map[string]topicMesh `json:"topics"`
}

// ackInfo is the subscribe ack's info: {"mesh_ms": u64 | null, "meshed": bool, "topics": …}.
func (o meshOutcome) ackInfo() map[string]any {
	var ms any // JSON null unless meshed
	if o.MeshMs != nil {
		ms = *o.MeshMs
	}
	return map[string]any{"mesh_ms": ms, "meshed": o.Meshed, "topics": o.Topics}
}

type meshStatus int

const (
	meshWaiting  meshStatus = iota
	meshDone                // ack ok (meshed or not: see the outcome)
	meshTimedOut            // ack ok: false with the error
)

type lastMesh struct {
	mesh  uint32
	since time.Time
}

type meshWait struct {
	topics     []string
	started    time.Time
	deadline   time.Time
	graceUntil time.Time
	fullMesh   uint32 // mesh_n_low (gossipsub), 1 (floodsub): a mesh as good as it gets
	stuckAfter time.Duration
	// since when every topic has been meshed without interruption (zero: not now)
	meshedSince time.Time
	lastChange  map[string]lastMesh
}

func newMeshWait(topics []string, now time.Time, timeout, grace time.Duration, fullMesh uint32) *meshWait {
	return &meshWait{
		topics: topics, started: now, deadline: now.Add(timeout), graceUntil: now.Add(grace),
		fullMesh: max(fullMesh, 1), stuckAfter: grace * stuckGraces, lastChange: map[string]lastMesh{},
	}
}

// evaluate looks at the topics' counts now; the outcome is meaningful unless meshWaiting,
// err is set for meshTimedOut, and wentAhead names the topics a meshDone without a mesh went
// ahead without.
func (w *meshWait) evaluate(now time.Time, counts func(string) topicPeers) (status meshStatus, out meshOutcome, wentAhead []string, err error) {
	inGrace := now.Before(w.graceUntil)
	out = meshOutcome{Topics: map[string]topicMesh{}}
	var missing []string
	allMeshed, settled := true, true
	for _, t := range w.topics {
		c := counts(t)
		target := min(w.fullMesh, c.Subscribed)
		last, ok := w.lastChange[t]
		if !ok || last.mesh != c.Mesh {
			last = lastMesh{mesh: c.Mesh, since: now}
			w.lastChange[t] = last
		}
		meshed := target >= 1 && c.Mesh >= target
		stuck := !inGrace && c.Mesh >= 1 && now.Sub(last.since) >= w.stuckAfter
		alone := c.Subscribed == 0 && !inGrace
		switch {
		case meshed:
		case alone:
			wentAhead = append(wentAhead, fmt.Sprintf("topic %q: no subscribed peer", t))
		case stuck:
			wentAhead = append(wentAhead, fmt.Sprintf("topic %q: mesh stuck at %d of %d", t, c.Mesh, target))
		default:
			missing = append(missing, fmt.Sprintf("topic %q: %d mesh peer(s) of %d needed, %d subscribed peer(s) known", t, c.Mesh, max(target, 1), c.Subscribed))
		}
		allMeshed = allMeshed && meshed
		// A full mesh is final; a smaller one may only mean subscriptions still arrive.
		settled = settled && (c.Mesh >= w.fullMesh || !inGrace)
		out.Topics[t] = topicMesh{Mesh: c.Mesh, Subscribed: c.Subscribed, Target: target}
	}
	if allMeshed {
		if w.meshedSince.IsZero() {
			w.meshedSince = now
		}
	} else {
		w.meshedSince = time.Time{}
	}
	atDeadline := !now.Before(w.deadline)
	switch {
	case len(missing) == 0 && (settled || atDeadline):
		if allMeshed {
			ms := uint64(w.meshedSince.Sub(w.started).Milliseconds())
			out.MeshMs, out.Meshed = &ms, true
		}
		return meshDone, out, wentAhead, nil
	case atDeadline:
		return meshTimedOut, out, nil, fmt.Errorf("no mesh within %d ms: %s", w.deadline.Sub(w.started).Milliseconds(), strings.Join(missing, "; "))
	default:
		return meshWaiting, out, nil, nil
	}
}
