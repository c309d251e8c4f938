package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Timing (docs/node-contract.md, "Timing").
const (
	welcomeTimeout = 60 * time.Second
	dialTimeout    = 10 * time.Second
	drainTimeout   = 3 * time.Second
	pollInterval   = 10 * time.Millisecond
)

type topicState struct {
	topic  *pubsub.Topic
	sub    *pubsub.Subscription // nil while only joined for publishing
	subIdx int                  // index of the open entry in node.subs
	cancel context.CancelFunc   // stops the subscription's reader
}

type node struct {
	env     nodeEnv
	ctrl    *control
	startNs uint64
	key     crypto.PrivKey
	peerID  peer.ID

	cfg    *nodeConfig
	host   host.Host
	ps     *pubsub.PubSub
	bw     *metrics.BandwidthCounter
	tracer *meshTracer
	rec    *recorder

	workCtx    context.Context
	cancelWork context.CancelFunc
	inflight   sync.WaitGroup

	mu         sync.Mutex
	state      string
	timeline   []stateChange
	topics     map[string]*topicState
	subs       []subscription
	published  []published
	nextSeq    uint64
	publishing int
	idleState  string // state to return to when the last publish ends
	lastSnap   *snapshot
}

func newNode(env nodeEnv, ctrl *control, startNs uint64) (*node, error) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &node{
		env: env, ctrl: ctrl, startNs: startNs, key: key, peerID: id,
		tracer: newMeshTracer(), bw: metrics.NewBandwidthCounter(),
		workCtx: ctx, cancelWork: cancel,
		topics: map[string]*topicState{},
	}, nil
}

func (n *node) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pubsub-node-go[%d]: %s\n", n.env.index, fmt.Sprintf(format, args...))
}

// setState records a lifecycle transition and reports it.
func (n *node) setState(state string, detail string) {
	n.mu.Lock()
	if n.state == state && detail == "" {
		n.mu.Unlock()
		return
	}
	n.state = state
	sc := stateChange{State: state, AtNs: nowNs()}
	if state == stateStarting {
		sc.AtNs = n.startNs
	}
	if detail != "" {
		d := detail
		sc.Detail = &d
	}
	n.timeline = append(n.timeline, sc)
	n.mu.Unlock()
	_ = n.ctrl.send(stateMsg{Type: "state", stateChange: sc})
}

func (n *node) currentState() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state
}

// run is the whole life of the node; it returns the process exit code.
func (n *node) run() int {
	err := n.ctrl.send(helloMsg{
		Type: "hello", Protocol: protocolVersion, Index: n.env.index,
		Pid: uint32(os.Getpid()), Implementation: "go", ImplVersion: implVersion(),
	})
	if err != nil {
		n.logf("cannot send hello: %v", err)
		return exitCodeStartup
	}
	n.setState(stateStarting, "")

	msgs := make(chan orchMsg, 256)
	badLines := make(chan error, 16)
	go n.ctrl.readLoop(msgs, badLines)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	welcomeBy := time.NewTimer(welcomeTimeout)
	defer welcomeBy.Stop()

	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				n.logf("the orchestrator closed the control channel; exiting")
				return exitCodeFailed
			}
			if code, done := n.handle(m); done {
				return code
			}
		case err := <-badLines:
			n.logf("%v (ignored)", err)
		case s := <-sigs:
			return n.stop(exitAborted, "signal "+s.String(), nil)
		case <-welcomeBy.C:
			if n.cfg == nil {
				return n.stop(exitError, fmt.Sprintf("no welcome within %s", welcomeTimeout), nil)
			}
		}
	}
}

// handle processes one orchestrator message; done says the node has stopped.
func (n *node) handle(m orchMsg) (code int, done bool) {
	switch m.Type {
	case "welcome":
		if n.cfg != nil {
			n.logf("second welcome ignored")
			return 0, false
		}
		if err := n.start(m); err != nil {
			return n.stop(exitError, err.Error(), nil), true
		}
	case "abort":
		return n.stop(exitAborted, "abort: "+m.Reason, nil), true
	case "released":
		// No command of protocol v1 makes this node signal; accepted and ignored.
	case "command":
		var c command
		if err := json.Unmarshal(m.Cmd, &c); err != nil {
			n.ack(m.ID, nil, fmt.Errorf("malformed command: %v", err))
			return 0, false
		}
		if n.cfg == nil {
			n.ack(m.ID, nil, fmt.Errorf("command %q before welcome", c.Op))
			return 0, false
		}
		if c.Op == "finish" {
			id := m.ID
			return n.stop(exitFinished, "", &id), true
		}
		n.inflight.Add(1)
		go func() {
			defer n.inflight.Done()
			info, err := n.command(n.workCtx, c)
			n.ack(m.ID, info, err)
		}()
	default:
		n.logf("unknown message type %q ignored", m.Type)
	}
	return 0, false
}

func (n *node) ack(id uint64, info map[string]any, err error) {
	a := ackMsg{Type: "ack", ID: id, OK: err == nil, Info: info}
	if err != nil {
		e := err.Error()
		a.Error = &e
	}
	_ = n.ctrl.send(a)
}

// start takes the welcome: checks it, starts libp2p and pubsub, reports listening.
func (n *node) start(m orchMsg) error {
	if m.Protocol != protocolVersion {
		return fmt.Errorf("orchestrator speaks protocol %d, this node speaks %d", m.Protocol, protocolVersion)
	}
	cfg, err := parseWelcomeConfig(m.Config)
	if err != nil {
		return fmt.Errorf("invalid welcome config: %v", err)
	}
	if cfg.Index != n.env.index {
		return fmt.Errorf("welcome is for node %d but this is node %d", cfg.Index, n.env.index)
	}
	n.cfg = cfg
	n.rec = newRecorder(cfg.Index, cfg.OriginGroups)
	h, err := newHost(n.key, n.env.listenIP, n.bw)
	if err != nil {
		return fmt.Errorf("libp2p: %v", err)
	}
	n.host = h
	h.Network().Notify(&network.NotifyBundle{DisconnectedF: func(net network.Network, c network.Conn) {
		if net.Connectedness(c.RemotePeer()) != network.Connected {
			n.tracer.forget(c.RemotePeer())
		}
	}})
	ps, err := newPubSub(n.workCtx, h, cfg, n.tracer)
	if err != nil {
		return fmt.Errorf("pubsub: %v", err)
	}
	n.ps = ps
	if err := n.ctrl.send(listeningMsg{Type: "listening", PeerID: n.peerID.String(), ListenAddrs: addrStrings(h)}); err != nil {
		return err
	}
	n.setState(stateListening, "")
	if cfg.SnapshotInterval > 0 {
		go n.snapshots(time.Duration(cfg.SnapshotInterval) * time.Millisecond)
	}
	return nil
}

func (n *node) snapshots(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-n.workCtx.Done():
			return
		case <-t.C:
			n.sendSnapshot()
		}
	}
}

func (n *node) sendSnapshot() {
	s := n.takeSnapshot()
	_ = n.ctrl.send(snapshotMsg{Type: "snapshot", snapshot: s})
}

func (n *node) takeSnapshot() snapshot {
	rss, _ := rssBytes()
	received, dups := n.rec.counts()
	n.mu.Lock()
	pub := uint64(len(n.published))
	names := make([]string, 0, len(n.topics))
	for t, ts := range n.topics {
		if ts.sub != nil {
			names = append(names, t)
		}
	}
	n.mu.Unlock()
	s := snapshot{
		AtNs: nowNs(), Published: pub, Received: received, Duplicates: dups,
		ConnectedPeers: uint32(len(n.host.Network().Peers())), RssBytes: rss, CPUNs: cpuNs(),
	}
	if len(names) > 0 {
		s.Topics = map[string]topicPeers{}
		for _, t := range names {
			s.Topics[t] = n.topicPeers(t)
		}
	}
	n.mu.Lock()
	n.lastSnap = &s
	n.mu.Unlock()
	return s
}

// topicPeers: known subscribed peers (connected) and mesh peers; floodsub sends to every
// subscribed peer, so its mesh is its subscribed peers.
func (n *node) topicPeers(topic string) topicPeers {
	subscribed := n.ps.ListPeers(topic)
	if n.cfg.Variant != "gossipsub" {
		return topicPeers{Mesh: uint32(len(subscribed)), Subscribed: uint32(len(subscribed))}
	}
	mesh := n.tracer.meshPeers(topic)
	count := 0
	for _, p := range subscribed {
		if _, ok := mesh[p]; ok {
			count++
		}
	}
	return topicPeers{Mesh: uint32(count), Subscribed: uint32(len(subscribed))}
}

func (n *node) command(ctx context.Context, c command) (map[string]any, error) {
	switch c.Op {
	case "connect":
		return n.connect(ctx, c.Peers)
	case "disconnect":
		return n.disconnect(c.Peers)
	case "subscribe":
		return n.subscribe(ctx, c)
	case "unsubscribe":
		return n.unsubscribe(c.Topics)
	case "publish":
		return n.publish(ctx, c)
	case "report":
		n.sendSnapshot()
		return nil, nil
	default:
		return nil, fmt.Errorf("unknown command op %q", c.Op)
	}
}

func (n *node) connect(ctx context.Context, peers []peerAddr) (map[string]any, error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	for _, p := range peers {
		wg.Add(1)
		go func(p peerAddr) {
			defer wg.Done()
			err := n.dial(ctx, p)
			if err != nil {
				mu.Lock()
				failures = append(failures, fmt.Sprintf("node %d (%s at %s): %v", p.Index, p.PeerID, p.Addr, err))
				mu.Unlock()
			}
		}(p)
	}
	wg.Wait()
	sort.Strings(failures)
	ok := len(peers) - len(failures)
	if (ok > 0 || len(peers) == 0) && n.currentState() == stateListening {
		n.setState(stateConnected, "")
	}
	info := map[string]any{"connected": ok, "failed": len(failures)}
	if len(failures) > 0 {
		return info, fmt.Errorf("%d of %d dials failed: %s", len(failures), len(peers), strings.Join(failures, "; "))
	}
	return info, nil
}

func (n *node) dial(ctx context.Context, p peerAddr) error {
	id, err := peer.Decode(p.PeerID)
	if err != nil {
		return fmt.Errorf("invalid peer id: %v", err)
	}
	addr, err := ma.NewMultiaddr(p.Addr)
	if err != nil {
		return fmt.Errorf("invalid multiaddr: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	return n.host.Connect(ctx, peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{addr}})
}

func (n *node) disconnect(peers []peerAddr) (map[string]any, error) {
	var failures []string
	for _, p := range peers {
		id, err := peer.Decode(p.PeerID)
		if err == nil {
			err = n.host.Network().ClosePeer(id)
		}
		if err != nil {
			failures = append(failures, fmt.Sprintf("node %d: %v", p.Index, err))
		}
	}
	if len(failures) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(failures, "; "))
	}
	return nil, nil
}

// joined returns the topic handle, joining the topic if needed. Call with n.mu held.
func (n *node) joinedLocked(name string) (*topicState, error) {
	if ts, ok := n.topics[name]; ok {
		return ts, nil
	}
	t, err := n.ps.Join(name)
	if err != nil {
		return nil, err
	}
	ts := &topicState{topic: t, subIdx: -1}
	n.topics[name] = ts
	return ts, nil
}

func (n *node) subscribe(ctx context.Context, c command) (map[string]any, error) {
	start := time.Now()
	for _, name := range c.Topics {
		if err := n.subscribeOne(name); err != nil {
			return nil, fmt.Errorf("subscribe %q: %v", name, err)
		}
	}
	n.setState(stateSubscribed, "")
	if !c.WaitMesh {
		return map[string]any{"topics": n.topicsInfo(c.Topics)}, nil
	}
	// A topic with no known subscribed peer stops holding the ack back after this grace:
	// subscriptions of peers that subscribe at the same moment need a round trip to arrive.
	grace := time.Second
	if n.cfg.Variant == "gossipsub" {
		if hb, err := parseHumanDuration(n.cfg.Gossipsub.Heartbeat); err == nil && 2*hb > grace {
			grace = 2 * hb
		}
	}
	deadline := start.Add(time.Duration(c.MeshTimeoutMs) * time.Millisecond)
	for {
		waiting := n.meshShortfall(c.Topics, time.Since(start) < grace)
		if len(waiting) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return map[string]any{"topics": n.topicsInfo(c.Topics)},
				fmt.Errorf("mesh not formed within %d ms: %s", c.MeshTimeoutMs, strings.Join(waiting, "; "))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cancelled: the node is stopping")
		case <-time.After(pollInterval):
		}
	}
	n.setState(stateReady, "")
	return map[string]any{"mesh_ms": time.Since(start).Milliseconds(), "topics": n.topicsInfo(c.Topics)}, nil
}

// meshShortfall names the topics whose mesh is not yet big enough: gossipsub needs
// min(mesh_n_low, subscribed peers) mesh peers and at least one; floodsub one subscribed
// peer. A topic with no subscribed peer waits only while inGrace.
func (n *node) meshShortfall(topics []string, inGrace bool) []string {
	var out []string
	for _, t := range topics {
		tp := n.topicPeers(t)
		if tp.Subscribed == 0 {
			if inGrace {
				out = append(out, fmt.Sprintf("topic %q: no subscribed peer known yet", t))
			}
			continue
		}
		need := min(n.cfg.Gossipsub.MeshNLow, tp.Subscribed)
		if need < 1 || n.cfg.Variant != "gossipsub" {
			need = 1
		}
		if tp.Mesh < need {
			out = append(out, fmt.Sprintf("topic %q: %d mesh peers of %d needed (%d subscribed)", t, tp.Mesh, need, tp.Subscribed))
		}
	}
	return out
}

func (n *node) topicsInfo(topics []string) map[string]topicPeers {
	out := map[string]topicPeers{}
	for _, t := range topics {
		out[t] = n.topicPeers(t)
	}
	return out
}

func (n *node) subscribeOne(name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	ts, err := n.joinedLocked(name)
	if err != nil {
		return err
	}
	if ts.sub != nil {
		return nil // already subscribed
	}
	sub, err := ts.topic.Subscribe(pubsub.WithBufferSize(subscriptionQueue))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(n.workCtx)
	ts.sub, ts.cancel = sub, cancel
	n.subs = append(n.subs, subscription{Topic: name, FromNs: nowNs()})
	ts.subIdx = len(n.subs) - 1
	self := n.host.ID()
	go func() {
		for {
			msg, err := sub.Next(ctx)
			if err != nil {
				return
			}
			if msg.ReceivedFrom == self {
				continue // our own message
			}
			n.rec.deliver(msg.GetData(), nowNs())
		}
	}()
	return nil
}

func (n *node) unsubscribe(topics []string) (map[string]any, error) {
	n.mu.Lock()
	for _, name := range topics {
		ts, ok := n.topics[name]
		if !ok || ts.sub == nil {
			continue
		}
		ts.sub.Cancel()
		ts.cancel()
		to := nowNs()
		n.subs[ts.subIdx].ToNs = &to
		ts.sub, ts.subIdx = nil, -1
		_ = ts.topic.Close()
		delete(n.topics, name)
	}
	remaining := 0
	for _, ts := range n.topics {
		if ts.sub != nil {
			remaining++
		}
	}
	state := n.state
	n.mu.Unlock()
	if remaining == 0 && (state == stateSubscribed || state == stateReady) {
		n.setState(stateConnected, "")
	}
	return nil, nil
}

func (n *node) publish(ctx context.Context, c command) (map[string]any, error) {
	n.mu.Lock()
	ts, err := n.joinedLocked(c.Topic)
	n.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("join %q: %v", c.Topic, err)
	}
	// Wait until some peer subscribed to the topic is known (or the timeout: then publish
	// anyway, and say so in the ack).
	waitStart := time.Now()
	peerDeadline := waitStart.Add(time.Duration(c.PeerTimeoutMs) * time.Millisecond)
	for len(n.ps.ListPeers(c.Topic)) == 0 && time.Now().Before(peerDeadline) {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cancelled: the node is stopping")
		case <-time.After(pollInterval):
		}
	}
	info := map[string]any{
		"peer_wait_ms": time.Since(waitStart).Milliseconds(),
		"peers":        len(n.ps.ListPeers(c.Topic)),
	}

	n.mu.Lock()
	if n.publishing == 0 {
		n.idleState = n.state
	}
	n.publishing++
	n.mu.Unlock()
	n.setState(stateRunning, "")
	defer func() {
		n.mu.Lock()
		n.publishing--
		back := n.idleState
		last := n.publishing == 0 && n.state == stateRunning
		n.mu.Unlock()
		if last {
			n.setState(back, "")
		}
	}()

	start := time.Now()
	done := 0
	for i := 0; i < int(c.Count); i++ {
		if c.Rate != nil && *c.Rate > 0 {
			due := start.Add(time.Duration(float64(i) / *c.Rate * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				select {
				case <-ctx.Done():
					info["published"] = done
					return info, fmt.Errorf("cancelled after %d of %d messages: the node is stopping", done, c.Count)
				case <-time.After(wait):
				}
			}
		}
		if ctx.Err() != nil {
			info["published"] = done
			return info, fmt.Errorf("cancelled after %d of %d messages: the node is stopping", done, c.Count)
		}
		n.mu.Lock()
		seq := n.nextSeq
		n.nextSeq++
		n.mu.Unlock()
		at := nowNs()
		data := header{Origin: n.cfg.Index, Seq: seq, PublishNs: at}.encode(int(c.Size))
		if err := ts.topic.Publish(ctx, data); err != nil {
			info["published"] = done
			return info, fmt.Errorf("publish seq %d: %v", seq, err)
		}
		n.mu.Lock()
		n.published = append(n.published, published{Seq: seq, Topic: c.Topic, AtNs: at})
		n.mu.Unlock()
		done++
	}
	info["published"] = done
	info["publish_ms"] = time.Since(start).Milliseconds()
	return info, nil
}

// stop ends the node: drain, final result, close, exit code. finishID is the id of the
// finish command, acked just before the result.
func (n *node) stop(exit string, reason string, finishID *uint64) int {
	if exit == exitError {
		n.logf("failed: %s", reason)
		n.setState(stateFailed, reason)
	} else {
		n.setState(stateDraining, reason)
	}
	n.cancelWork()
	drained := make(chan struct{})
	go func() { n.inflight.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		n.logf("commands still running after %s; sending the result anyway", drainTimeout)
	}
	var res *nodeResult
	if n.cfg != nil && n.host != nil {
		r, err := n.result(exit, reason)
		if err != nil {
			n.logf("cannot build the result: %v", err)
		} else {
			res = r
		}
	}
	if exit != exitError {
		n.setState(stateDone, "")
	}
	if finishID != nil {
		n.ack(*finishID, nil, nil)
	}
	if res == nil {
		// Nothing ran yet (or the result failed): a minimal result still tells the outcome.
		res = n.minimalResult(exit, reason)
	}
	n.mu.Lock()
	res.Timeline = append([]stateChange(nil), n.timeline...)
	n.mu.Unlock()
	if err := n.ctrl.sendFinal(resultMsg{Type: "result", nodeResult: *res}); err != nil {
		n.logf("cannot send the result: %v", err)
	}
	if n.tracer.dropped.Load() > 0 || n.tracer.undeliverable.Load() > 0 || n.rec != nil && n.rec.malformed > 0 {
		n.logf("router dropped %d RPCs, %d messages undeliverable to a slow subscriber, %d malformed payloads",
			n.tracer.dropped.Load(), n.tracer.undeliverable.Load(), n.malformed())
	}
	if n.host != nil {
		_ = n.host.Close()
	}
	switch exit {
	case exitFinished:
		return exitCodeOK
	case exitAborted:
		return exitCodeAborted
	default:
		return exitCodeFailed
	}
}

func (n *node) malformed() uint64 {
	if n.rec == nil {
		return 0
	}
	n.rec.mu.Lock()
	defer n.rec.mu.Unlock()
	return n.rec.malformed
}

func (n *node) minimalResult(exit, reason string) *nodeResult {
	rss, peak := rssBytes()
	r := &nodeResult{
		Index: n.env.index, PeerID: n.peerID.String(), Exit: exit,
		Latency: []originLatency{}, Published: []published{}, Seen: []seenFrom{},
		Subscriptions: []subscription{}, PeakRssBytes: peak, FinalRssBytes: rss, CPUNs: cpuNs(),
	}
	if exit == exitError {
		r.Error = &reason
	}
	return r
}

func (n *node) result(exit, reason string) (*nodeResult, error) {
	snap := n.takeSnapshot()
	lat, err := n.rec.latency()
	if err != nil {
		return nil, err
	}
	r := n.minimalResult(exit, reason)
	r.Latency = lat
	r.Seen = n.rec.seenRanges()
	r.Received, r.Duplicates = n.rec.counts()
	dups := n.tracer.duplicates.Load()
	r.RouterDuplicates = &dups
	totals := n.bw.GetBandwidthTotals()
	in, out := uint64(totals.TotalIn), uint64(totals.TotalOut)
	r.BytesIn, r.BytesOut = &in, &out
	r.LastSnapshot = &snap
	n.mu.Lock()
	r.Published = append(r.Published, n.published...)
	r.Subscriptions = append(r.Subscriptions, n.subs...)
	n.mu.Unlock()
	return r, nil
}

func nowNs() uint64 {
	return uint64(time.Now().UnixNano())
}
