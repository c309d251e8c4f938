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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
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
	dialTimeout    = 30 * time.Second
	drainTimeout   = 3 * time.Second
	pollInterval   = 10 * time.Millisecond
	// routerTimeout bounds a question to the router's event loop: a router that stopped
	// answering (a hung fork) must not stop the node from reporting and ending.
	routerTimeout = time.Second
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

	workCtx    context.Context // commands and snapshots; cancelled when the node stops
	cancelWork context.CancelFunc
	p2pCtx     context.Context // pubsub; cancelled only after the result is sent
	cancelP2P  context.CancelFunc
	inflight   sync.WaitGroup

	mu        sync.Mutex
	state     string
	timeline  []stateChange
	topics    map[string]*topicState
	subs      []subscription
	published []published
	nextSeq   uint64
	lastSnap  *snapshot
	lag       *hdrhistogram.Histogram // send − due per published message (µs)
	mesh      *meshOutcome            // the last subscribe-with-wait_mesh's outcome

	routerBusy atomic.Bool // a ListPeers call has not returned within routerTimeout
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
	p2pCtx, cancelP2P := context.WithCancel(context.Background())
	return &node{
		env: env, ctrl: ctrl, startNs: startNs, key: key, peerID: id,
		tracer: newMeshTracer(), bw: metrics.NewBandwidthCounter(),
		workCtx: ctx, cancelWork: cancel, p2pCtx: p2pCtx, cancelP2P: cancelP2P,
		topics: map[string]*topicState{}, lag: newLatencyHistogram(),
	}, nil
}

func (n *node) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pubsub-node-go[%d]: %s\n", n.env.index, fmt.Sprintf(format, args...))
}

// stateOrder is the lifecycle's order: states only move forward (a second connect or a
// subscribe while publishing does not move the timeline back), or to failed from anywhere.
var stateOrder = map[string]int{
	stateStarting: 0, stateListening: 1, stateConnected: 2, stateSubscribed: 3, stateReady: 4,
	stateRunning: 5, stateDraining: 6, stateDone: 7, stateFailed: 8,
}

// setState records a lifecycle transition, if it is one, and reports it.
func (n *node) setState(state string, detail string) {
	n.mu.Lock()
	terminal := n.state == stateDone || n.state == stateFailed
	forward := n.state == "" || stateOrder[state] > stateOrder[n.state]
	if terminal || (state != stateFailed && !forward) {
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
		Secret: n.env.secret,
	})
	if err != nil {
		n.logf("cannot send hello: %v", err)
		return exitCodeControl
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
				return exitCodeControl
			}
			if code, done := n.handle(m); done {
				return code
			}
		case err := <-badLines:
			n.logf("%v (ignored)", err)
		case s := <-sigs:
			name, code := "SIGTERM", exitCodeSIGTERM
			if s == syscall.SIGINT {
				name, code = "SIGINT", exitCodeSIGINT
			}
			n.stop(exitAborted, "stopped by "+name, nil)
			return code
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
		return n.stop(exitAborted, "aborted by the orchestrator: "+m.Reason, nil), true
	case "released":
		// No command makes this node signal; accepted and ignored.
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
	h, err := newHost(n.key, n.env.listenIP, n.bw, cfg.Security)
	if err != nil {
		return fmt.Errorf("libp2p: %v", err)
	}
	n.host = h
	h.Network().Notify(&network.NotifyBundle{DisconnectedF: func(net network.Network, c network.Conn) {
		if net.Connectedness(c.RemotePeer()) != network.Connected {
			n.tracer.forget(c.RemotePeer())
		}
	}})
	ps, err := newPubSub(n.p2pCtx, h, cfg, n.tracer)
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
			tp, ok := n.topicPeers(t)
			if !ok {
				s.Topics = nil // the router does not answer: no topic counts rather than wrong ones
				break
			}
			s.Topics[t] = tp
		}
	}
	n.mu.Lock()
	n.lastSnap = &s
	n.mu.Unlock()
	return s
}

// topicPeers: known subscribed peers (connected) and mesh peers; floodsub sends to every
// subscribed peer, so its mesh is its subscribed peers. ok is false when the router did not
// answer (see listPeers).
func (n *node) topicPeers(topic string) (tp topicPeers, ok bool) {
	subscribed, ok := n.listPeers(topic)
	if !ok {
		return topicPeers{}, false
	}
	if n.cfg.Variant != "gossipsub" {
		return topicPeers{Mesh: uint32(len(subscribed)), Subscribed: uint32(len(subscribed))}, true
	}
	mesh := n.tracer.meshPeers(topic)
	count := 0
	for _, p := range subscribed {
		if _, ok := mesh[p]; ok {
			count++
		}
	}
	return topicPeers{Mesh: uint32(count), Subscribed: uint32(len(subscribed))}, true
}

// listPeers is the router's ListPeers, which runs on its event loop, given routerTimeout to
// answer. While one call is overdue, others give up at once instead of piling up behind it.
func (n *node) listPeers(topic string) ([]peer.ID, bool) {
	if n.routerBusy.Load() {
		return nil, false
	}
	answer := make(chan []peer.ID, 1)
	go func() { answer <- n.ps.ListPeers(topic) }()
	select {
	case peers := <-answer:
		return peers, true
	case <-time.After(routerTimeout):
		if n.routerBusy.CompareAndSwap(false, true) {
			n.logf("the pubsub router has not answered ListPeers(%q) within %s; topic counts are left out until it does", topic, routerTimeout)
			go func() { <-answer; n.routerBusy.Store(false) }()
		}
		return nil, false
	}
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
	n.setState(stateConnected, "")
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
	return explainDialError(n.host.Connect(ctx, peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{addr}}), n.cfg.Security)
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
		return nil, nil
	}
	fullMesh := n.cfg.Gossipsub.MeshNLow
	if n.cfg.Variant != "gossipsub" {
		fullMesh = 1
	}
	w := newMeshWait(c.Topics, start, time.Duration(c.MeshTimeoutMs)*time.Millisecond, subscribeGrace(n.cfg.Gossipsub), fullMesh)
	for {
		now := time.Now()
		counts, answered := map[string]topicPeers{}, true
		for _, t := range c.Topics {
			tp, ok := n.topicPeers(t)
			answered = answered && ok
			counts[t] = tp
		}
		status, outcome, wentAhead, err := meshWaiting, meshOutcome{}, []string(nil), error(nil)
		if answered {
			status, outcome, wentAhead, err = w.evaluate(now, func(t string) topicPeers { return counts[t] })
		} else if now.Sub(start) >= time.Duration(c.MeshTimeoutMs)*time.Millisecond {
			// No counts from the router this round: only the deadline still counts.
			return nil, fmt.Errorf("no mesh within %d ms: the pubsub router does not answer", c.MeshTimeoutMs)
		}
		if status != meshWaiting {
			n.mu.Lock()
			n.mesh = &outcome
			n.mu.Unlock()
		}
		switch status {
		case meshDone:
			detail := ""
			if len(wentAhead) > 0 {
				detail = "went ahead without a mesh: " + strings.Join(wentAhead, "; ")
			}
			n.setState(stateReady, detail)
			return outcome.ackInfo(), nil
		case meshTimedOut:
			return outcome.ackInfo(), err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cancelled: the node is stopping")
		case <-time.After(pollInterval):
		}
	}
}

// subscribeGrace is how long a subscribe with wait_mesh treats a small mesh as possibly
// still growing (peers' subscriptions are still arriving): heartbeat_initial_delay +
// heartbeat, at least 1 s.
func subscribeGrace(gp gossipsubParams) time.Duration {
	grace := time.Second
	hb, err1 := parseHumanDuration(gp.Heartbeat)
	delay, err2 := parseHumanDuration(gp.HeartbeatInitialDelay)
	if err1 == nil && err2 == nil && hb+delay > grace {
		grace = hb + delay
	}
	return grace
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
			at := nowNs()
			if h, first := n.rec.deliver(msg.GetData(), at); first && n.cfg.ReportDeliveries {
				_ = n.ctrl.send(deliveredMsg{Type: "delivered", Origin: h.Origin, Seq: h.Seq, AtNs: at})
			}
		}
	}()
	return nil
}

func (n *node) unsubscribe(topics []string) (map[string]any, error) {
	// Spans close and topics leave the node's books under the lock; the router is told
	// afterwards, so a router that does not answer holds up this command only.
	n.mu.Lock()
	var leaving []*topicState
	for _, name := range topics {
		ts, ok := n.topics[name]
		if !ok || ts.sub == nil {
			continue
		}
		to := nowNs()
		n.subs[ts.subIdx].ToNs = &to
		delete(n.topics, name)
		leaving = append(leaving, ts)
	}
	n.mu.Unlock()
	for _, ts := range leaving {
		ts.cancel()
		ts.sub.Cancel()
		_ = ts.topic.Close()
	}
	return map[string]any{"unsubscribed": len(leaving)}, nil
}

func (n *node) publish(ctx context.Context, c command) (map[string]any, error) {
	n.mu.Lock()
	ts, err := n.joinedLocked(c.Topic)
	n.mu.Unlock()
	if err != nil {
		return map[string]any{"published": 0}, fmt.Errorf("join %q: %v", c.Topic, err)
	}
	// Wait until some peer subscribed to the topic is known; none by the timeout: fail.
	started := time.Now()
	peerDeadline := started.Add(time.Duration(c.PeerTimeoutMs) * time.Millisecond)
	for {
		peers, answered := n.listPeers(c.Topic)
		if len(peers) > 0 {
			break
		}
		if !time.Now().Before(peerDeadline) {
			why := ""
			if !answered {
				why = " (the pubsub router does not answer)"
			}
			return map[string]any{"published": 0},
				fmt.Errorf("no peer subscribed to topic %q within %d ms%s; published nothing", c.Topic, c.PeerTimeoutMs, why)
		}
		select {
		case <-ctx.Done():
			return map[string]any{"published": 0}, fmt.Errorf("cancelled: the node is stopping")
		case <-time.After(pollInterval):
		}
	}
	// Message i is due at sendStart + i/rate (paced) or as soon as it can go (back to back,
	// due = send). Scheduling against sendStart, not the previous send, keeps the rate from
	// drifting, and a late message carries its due time: latency counts the publisher's lag.
	sendStart := time.Now()
	paced := c.Rate != nil && *c.Rate > 0
	done := 0
	failed := func(e error) (map[string]any, error) {
		return map[string]any{"published": done},
			fmt.Errorf("published %d of %d on topic %q, then: %v", done, c.Count, c.Topic, e)
	}
	for i := 0; i < int(c.Count); i++ {
		var due time.Time
		if paced {
			due = sendStart.Add(time.Duration(float64(i) / *c.Rate * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				select {
				case <-ctx.Done():
					return failed(fmt.Errorf("the node is stopping"))
				case <-time.After(wait):
				}
			}
		}
		if ctx.Err() != nil {
			return failed(fmt.Errorf("the node is stopping"))
		}
		n.mu.Lock()
		seq := n.nextSeq
		n.nextSeq++
		n.mu.Unlock()
		// go-libp2p-pubsub never refuses a publish for a passing reason (no peers, full
		// queues: it drops silently), so there is no retry; the due time is fixed above.
		at := nowNs()
		dueNs := at
		if paced {
			dueNs = uint64(due.UnixNano())
		}
		data := header{Origin: n.cfg.Index, Seq: seq, SendNs: at, DueNs: dueNs, Paced: paced}.encode(int(c.Size))
		if err := ts.topic.Publish(ctx, data); err != nil {
			return failed(err)
		}
		p := published{Seq: seq, Topic: c.Topic, AtNs: at}
		if paced {
			p.DueNs = &dueNs
		}
		n.mu.Lock()
		n.published = append(n.published, p)
		recordLatencyNs(n.lag, int64(at)-int64(dueNs))
		n.mu.Unlock()
		done++
		n.setState(stateRunning, "")
	}
	return map[string]any{"published": done, "elapsed_ms": time.Since(started).Milliseconds()}, nil
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
		n.ack(*finishID, n.countersInfo(), nil)
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
	if c := n.countersInfo(); c["malformed_payloads"] != uint64(0) || c["router_failed_sends"] != uint64(0) {
		n.logf("counters without a result field: %v", c)
	}
	n.cancelP2P()
	if n.host != nil {
		// The result is out: closing gets a second, so the process exits promptly (§12)
		// even when the router or a connection hangs.
		closed := make(chan struct{})
		go func() { _ = n.host.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(routerTimeout):
			n.logf("libp2p did not close within %s; exiting anyway", routerTimeout)
		}
	}
	if exit == exitError {
		return exitCodeFailed
	}
	return exitCodeOK
}

// countersInfo: counters the result has no field for, sent in the finish ack (the same keys
// as the Rust node, plus go-libp2p-pubsub's own).
func (n *node) countersInfo() map[string]any {
	var malformed, clamped uint64
	if n.rec != nil {
		n.rec.mu.Lock()
		malformed, clamped = n.rec.malformed, n.rec.clamped
		n.rec.mu.Unlock()
	}
	return map[string]any{
		"malformed_payloads":       malformed,
		"clamped_latencies":        clamped,
		"router_failed_sends":      n.tracer.dropped.Load(),
		"undeliverable_to_app":     n.tracer.undeliverable.Load(),
		"router_rejected_messages": n.tracer.rejected.Load(),
	}
}

func (n *node) minimalResult(exit, reason string) *nodeResult {
	rss, peak := rssBytes()
	r := &nodeResult{
		Index: n.env.index, PeerID: n.peerID.String(), Exit: exit,
		Latency: []originLatency{}, LatencySinceSend: []originLatency{}, Published: []published{}, Seen: []seenFrom{},
		Subscriptions: []subscription{}, PeakRssBytes: peak, FinalRssBytes: rss, CPUNs: cpuNs(),
	}
	if exit != exitFinished && reason != "" {
		r.Error = &reason
	}
	return r
}

func (n *node) result(exit, reason string) (*nodeResult, error) {
	snap := n.takeSnapshot()
	lat, sinceSend, err := n.rec.latency()
	if err != nil {
		return nil, err
	}
	r := n.minimalResult(exit, reason)
	r.Latency, r.LatencySinceSend = lat, sinceSend
	r.Seen = n.rec.seenRanges()
	r.Received, r.Duplicates = n.rec.counts()
	dups := n.tracer.duplicates.Load()
	r.RouterDuplicates = &dups
	totals := n.bw.GetBandwidthTotals()
	in, out := uint64(totals.TotalIn), uint64(totals.TotalOut)
	r.BytesIn, r.BytesOut = &in, &out
	r.LastSnapshot = &snap
	n.mu.Lock()
	defer n.mu.Unlock()
	r.Published = append(r.Published, n.published...)
	r.Subscriptions = append(r.Subscriptions, n.subs...)
	r.Mesh = n.mesh
	if len(n.published) > 0 {
		enc, err := encodeHistogram(n.lag)
		if err != nil {
			return nil, err
		}
		r.PublishLag = &enc
	}
	return r, nil
}

func nowNs() uint64 {
	return uint64(time.Now().UnixNano())
}
