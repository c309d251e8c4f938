package main

import (
	"context"
	"fmt"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

const pubsubModule = "github.com/libp2p/go-libp2p-pubsub"

// Queue sizes raised above go-libp2p-pubsub's defaults (32) so that back-to-back publishing
// in a benchmark measures the router, not a full queue dropping messages.
const (
	peerOutboundQueue = 1024
	validateQueue     = 1024
	subscriptionQueue = 4096
)

// implVersion names the pubsub and libp2p module versions compiled in, e.g.
// "go-libp2p-pubsub v0.19.0, go-libp2p v0.51.0"; a fork shows as "go-libp2p-pubsub =>
// example.com/fork v1.2.3", whether it replaces the upstream module or, under its own module
// path, is imported directly (interop/go/build.sh rewrites the imports for that).
func implVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	var pubsubV, libp2pV string
	for _, d := range info.Deps {
		v := d.Version
		if d.Replace != nil {
			if d.Replace.Version != "" {
				v = "=> " + d.Replace.Path + " " + d.Replace.Version
			} else {
				v = "=> " + d.Replace.Path
			}
		}
		switch {
		case d.Path == pubsubModule:
			pubsubV = v
		case strings.HasSuffix(d.Path, "/go-libp2p-pubsub") && pubsubV == "":
			pubsubV = "=> " + d.Path + " " + v
		case d.Path == "github.com/libp2p/go-libp2p":
			libp2pV = v
		}
	}
	return fmt.Sprintf("go-libp2p-pubsub %s, go-libp2p %s", pubsubV, libp2pV)
}

// newHost builds a libp2p host with TCP, noise (or plaintext) and yamux only (identify and
// ping come with go-libp2p's basic host), listening on an OS-assigned port of listenIP.
func newHost(key crypto.PrivKey, listenIP string, bw metrics.Reporter, security string) (host.Host, error) {
	ip := net.ParseIP(listenIP)
	if ip == nil {
		return nil, fmt.Errorf("TESTBED_LISTEN_IP %q is not an IP address", listenIP)
	}
	proto := "ip4"
	if ip.To4() == nil {
		proto = "ip6"
	}
	return libp2p.New(
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(fmt.Sprintf("/%s/%s/tcp/0", proto, listenIP)),
		libp2p.Transport(tcp.NewTCPTransport),
		securityOption(security),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.BandwidthReporter(bw),
		libp2p.Ping(true),
		// Handshakes of a fleet starting together on few cores can take seconds (js peers
		// especially): go-libp2p gives a local dial 5 s; allow what the connect command does.
		libp2p.WithDialTimeout(dialTimeout),
		libp2p.SwarmOpts(swarm.WithDialTimeoutLocal(dialTimeout)),
	)
}

// securityOption: noise, or go-libp2p's insecure transport for plaintext (peer ids are still
// exchanged and checked, nothing is encrypted). A node offers only its own: peers of another
// security fail to negotiate one.
func securityOption(security string) libp2p.Option {
	if security == securityPlaintext {
		return plaintextSecurity()
	}
	return libp2p.Security(noise.ID, noise.New)
}

// explainDialError names a security mismatch, which go-libp2p reports as a failed
// multistream negotiation.
func explainDialError(err error, security string) error {
	if err != nil && strings.Contains(err.Error(), "failed to negotiate security protocol") {
		return fmt.Errorf("%w (security mismatch: this node uses %s security and the peer offers none it knows; every connected node must use the same security)", err, security)
	}
	return err
}

// pubsubOptions maps the contract's GossipsubParams onto go-libp2p-pubsub options.
func pubsubOptions(cfg *nodeConfig, tracer *meshTracer) ([]pubsub.Option, error) {
	gp := cfg.Gossipsub
	opts := []pubsub.Option{
		pubsub.WithRawTracer(tracer),
		pubsub.WithMaxMessageSize(int(gp.MaxTransmitSize)),
		pubsub.WithPeerOutboundQueueSize(peerOutboundQueue),
		pubsub.WithValidateQueueSize(validateQueue),
	}
	switch gp.Validation {
	case "strict":
		opts = append(opts, pubsub.WithMessageSignaturePolicy(pubsub.StrictSign))
	case "permissive":
		opts = append(opts, pubsub.WithMessageSignaturePolicy(pubsub.LaxSign))
	case "anonymous":
		// No author, no seqno, no signature: the default message id (author ‖ seqno) would
		// be empty, so ids come from the payload (contract: origin ‖ seq, bytes 4..16).
		opts = append(opts,
			pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
			pubsub.WithNoAuthor(),
			pubsub.WithMessageIdFn(payloadMessageID))
	case "none":
		opts = append(opts, pubsub.WithMessageSignaturePolicy(pubsub.LaxNoSign))
	default:
		return nil, fmt.Errorf("unknown validation mode %q (expected strict, permissive, anonymous or none)", gp.Validation)
	}
	if cfg.Variant != "gossipsub" {
		return opts, nil
	}
	params := pubsub.DefaultGossipSubParams()
	params.D = int(gp.MeshN)
	params.Dlo = int(gp.MeshNLow)
	params.Dhi = int(gp.MeshNHigh)
	params.Dout = int(gp.MeshOutboundMin)
	params.Dlazy = int(gp.GossipLazy)
	params.GossipFactor = gp.GossipFactor
	params.HistoryLength = int(gp.HistoryLength)
	params.HistoryGossip = int(gp.HistoryGossip)
	if params.Dscore > params.Dhi {
		params.Dscore = params.Dhi
	}
	for _, d := range []struct {
		name string
		text string
		dst  *time.Duration
	}{
		{"heartbeat", gp.Heartbeat, &params.HeartbeatInterval},
		{"heartbeat_initial_delay", gp.HeartbeatInitialDelay, &params.HeartbeatInitialDelay},
		{"fanout_ttl", gp.FanoutTTL, &params.FanoutTTL},
	} {
		v, err := parseHumanDuration(d.text)
		if err != nil {
			return nil, fmt.Errorf("gossipsub.%s: %v", d.name, err)
		}
		*d.dst = v
	}
	opts = append(opts, pubsub.WithGossipSubParams(params), pubsub.WithFloodPublish(gp.FloodPublish))
	return opts, nil
}

func newPubSub(ctx context.Context, h host.Host, cfg *nodeConfig, tracer *meshTracer) (*pubsub.PubSub, error) {
	opts, err := pubsubOptions(cfg, tracer)
	if err != nil {
		return nil, err
	}
	switch cfg.Variant {
	case "gossipsub":
		return pubsub.NewGossipSub(ctx, h, opts...)
	case "floodsub":
		return pubsub.NewFloodSub(ctx, h, opts...)
	default:
		return nil, fmt.Errorf("unknown variant %q (expected gossipsub or floodsub)", cfg.Variant)
	}
}

// payloadMessageID is the message id in anonymous mode: origin ‖ seq from the payload.
func payloadMessageID(m *pb.Message) string {
	data := m.GetData()
	if len(data) >= 16 {
		return string(data[4:16])
	}
	return string(data)
}

// meshTracer follows the gossipsub mesh per topic (Graft/Prune), and counts what the router
// dropped. It implements the union of RawTracer's methods across go-libp2p-pubsub versions
// (v0.14 has AddPeer/RemovePeer, v0.16+ OnNewOutboundStream/…, v0.19 SendRPCCompleted), so
// the node builds against every version. Callbacks run inside pubsub's event loop: they only
// touch this struct.
type meshTracer struct {
	mu            sync.Mutex
	mesh          map[string]map[peer.ID]struct{}
	duplicates    atomic.Uint64
	dropped       atomic.Uint64
	undeliverable atomic.Uint64
	rejected      atomic.Uint64
}

func newMeshTracer() *meshTracer {
	return &meshTracer{mesh: map[string]map[peer.ID]struct{}{}}
}

// meshPeers returns the peers in the mesh of topic.
func (t *meshTracer) meshPeers(topic string) map[peer.ID]struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[peer.ID]struct{}, len(t.mesh[topic]))
	for p := range t.mesh[topic] {
		out[p] = struct{}{}
	}
	return out
}

// forget drops a disconnected peer from every mesh (newer versions do not report it).
func (t *meshTracer) forget(p peer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, peers := range t.mesh {
		delete(peers, p)
	}
}

func (t *meshTracer) Graft(p peer.ID, topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mesh[topic] == nil {
		t.mesh[topic] = map[peer.ID]struct{}{}
	}
	t.mesh[topic][p] = struct{}{}
}

func (t *meshTracer) Prune(p peer.ID, topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mesh[topic], p)
}

func (t *meshTracer) Leave(topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mesh, topic)
}

func (t *meshTracer) RemovePeer(p peer.ID)                                 { t.forget(p) }
func (t *meshTracer) AddPeer(peer.ID, protocol.ID)                         {}
func (t *meshTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (t *meshTracer) OnClosedOutboundStream(peer.ID)                       {}
func (t *meshTracer) Join(string)                                          {}
func (t *meshTracer) ValidateMessage(*pubsub.Message)                      {}
func (t *meshTracer) DeliverMessage(*pubsub.Message)                       {}
func (t *meshTracer) RejectMessage(*pubsub.Message, string)                { t.rejected.Add(1) }
func (t *meshTracer) DuplicateMessage(*pubsub.Message)                     { t.duplicates.Add(1) }
func (t *meshTracer) ThrottlePeer(peer.ID)                                 {}
func (t *meshTracer) RecvRPC(*pubsub.RPC)                                  {}
func (t *meshTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (t *meshTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (t *meshTracer) DropRPC(*pubsub.RPC, peer.ID)                         { t.dropped.Add(1) }
func (t *meshTracer) UndeliverableMessage(*pubsub.Message)                 { t.undeliverable.Add(1) }

// addrString is a multiaddr without a /p2p suffix, as the contract's listen_addrs want.
func addrStrings(h host.Host) []string {
	out := []string{}
	for _, a := range h.Addrs() {
		s := a.String()
		if i := strings.Index(s, "/p2p/"); i >= 0 {
			s = s[:i]
		}
		out = append(out, s)
	}
	return out
}
