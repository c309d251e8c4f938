package main

// The wire types of the node contract (docs/node-contract.md), mirroring the Rust crate
// testbed-contract (contract/src/protocol.rs and results.rs). Field names and optionality
// must match exactly: the orchestrator refuses unknown fields in node messages.

import (
	"encoding/json"
	"fmt"
)

const protocolVersion = 2

// Connection security (NodeConfig.security).
const (
	securityNoise     = "noise"
	securityPlaintext = "plaintext"
)

// Node states (contract/src/results.rs NodeState).
const (
	stateStarting   = "starting"
	stateListening  = "listening"
	stateConnected  = "connected"
	stateSubscribed = "subscribed"
	stateReady      = "ready"
	stateRunning    = "running"
	stateDraining   = "draining"
	stateDone       = "done"
	stateFailed     = "failed"
)

// Exit reasons (results.rs ExitReason).
const (
	exitFinished = "finished"
	exitAborted  = "aborted"
	exitError    = "error"
)

// ---- node → orchestrator ----

type helloMsg struct {
	Type           string `json:"type"`
	Protocol       uint32 `json:"protocol"`
	Index          uint32 `json:"index"`
	Pid            uint32 `json:"pid"`
	Implementation string `json:"implementation"`
	ImplVersion    string `json:"impl_version"`
	// Secret is TESTBED_RUN_SECRET: the orchestrator drops a hello without the run's secret.
	Secret string `json:"secret,omitempty"`
}

type listeningMsg struct {
	Type        string   `json:"type"`
	PeerID      string   `json:"peer_id"`
	ListenAddrs []string `json:"listen_addrs"`
}

type stateChange struct {
	State  string  `json:"state"`
	AtNs   uint64  `json:"at_ns"`
	Detail *string `json:"detail,omitempty"`
}

type stateMsg struct {
	Type string `json:"type"`
	stateChange
}

type ackMsg struct {
	Type  string         `json:"type"`
	ID    uint64         `json:"id"`
	OK    bool           `json:"ok"`
	Error *string        `json:"error,omitempty"`
	Info  map[string]any `json:"info,omitempty"`
}

type topicPeers struct {
	Mesh       uint32 `json:"mesh"`
	Subscribed uint32 `json:"subscribed"`
}

type snapshot struct {
	AtNs           uint64                `json:"at_ns"`
	Published      uint64                `json:"published"`
	Received       uint64                `json:"received"`
	Duplicates     uint64                `json:"duplicates"`
	ConnectedPeers uint32                `json:"connected_peers"`
	RssBytes       uint64                `json:"rss_bytes"`
	CPUNs          uint64                `json:"cpu_ns"`
	Topics         map[string]topicPeers `json:"topics,omitempty"`
}

type snapshotMsg struct {
	Type string `json:"type"`
	snapshot
}

// deliveredMsg reports a first delivery when the welcome asked for report_deliveries.
type deliveredMsg struct {
	Type   string `json:"type"`
	Origin uint32 `json:"origin"`
	Seq    uint64 `json:"seq"`
	AtNs   uint64 `json:"at_ns"`
}

// pongMsg answers ping at once: at_ns is the node's wall clock when the ping was read.
type pongMsg struct {
	Type string `json:"type"`
	ID   uint64 `json:"id"`
	AtNs uint64 `json:"at_ns"`
}

type signalMsg struct {
	Type    string `json:"type"`
	Barrier string `json:"barrier"`
	Target  uint32 `json:"target"`
}

type published struct {
	Seq   uint64 `json:"seq"`
	Topic string `json:"topic"`
	AtNs  uint64 `json:"at_ns"`
	// DueNs is the schedule's due time of a paced message; absent: due = send (at_ns).
	DueNs *uint64 `json:"due_ns,omitempty"`
}

type seenFrom struct {
	Origin uint32      `json:"origin"`
	Ranges [][2]uint64 `json:"ranges"`
}

type subscription struct {
	Topic  string  `json:"topic"`
	FromNs uint64  `json:"from_ns"`
	ToNs   *uint64 `json:"to_ns,omitempty"`
}

type originLatency struct {
	OriginGroup uint16 `json:"origin_group"`
	Hdr         string `json:"hdr"`
}

type nodeResult struct {
	Index            uint32          `json:"index"`
	PeerID           string          `json:"peer_id"`
	Exit             string          `json:"exit"`
	Error            *string         `json:"error,omitempty"`
	Latency          []originLatency `json:"latency"`
	LatencySinceSend []originLatency `json:"latency_since_send"`
	PublishLag       *string         `json:"publish_lag,omitempty"`
	Mesh             *meshOutcome    `json:"mesh,omitempty"`
	Published        []published     `json:"published"`
	Seen             []seenFrom      `json:"seen"`
	Subscriptions    []subscription  `json:"subscriptions"`
	Received         uint64          `json:"received"`
	Duplicates       uint64          `json:"duplicates"`
	RouterDuplicates *uint64         `json:"router_duplicates,omitempty"`
	BytesIn          *uint64         `json:"bytes_in,omitempty"`
	BytesOut         *uint64         `json:"bytes_out,omitempty"`
	PeakRssBytes     uint64          `json:"peak_rss_bytes"`
	FinalRssBytes    uint64          `json:"final_rss_bytes"`
	CPUNs            uint64          `json:"cpu_ns"`
	Timeline         []stateChange   `json:"timeline"`
	LastSnapshot     *snapshot       `json:"last_snapshot,omitempty"`
}

type resultMsg struct {
	Type string `json:"type"`
	nodeResult
}

// ---- orchestrator → node ----

// orchMsg is any orchestrator message; which fields are set depends on Type.
type orchMsg struct {
	Type     string          `json:"type"`
	Protocol uint32          `json:"protocol"`
	Config   json.RawMessage `json:"config"`
	ID       uint64          `json:"id"`
	Cmd      json.RawMessage `json:"cmd"`
	Barrier  string          `json:"barrier"`
	Count    uint32          `json:"count"`
	Reason   string          `json:"reason"`
}

type nodeConfig struct {
	RunID            string          `json:"run_id"`
	Index            uint32          `json:"index"`
	Group            string          `json:"group"`
	Variant          string          `json:"variant"`
	Gossipsub        gossipsubParams `json:"gossipsub"`
	Seed             uint64          `json:"seed"`
	SnapshotInterval uint64          `json:"snapshot_interval_ms"`
	OriginGroups     []uint16        `json:"origin_groups"`
	Tracing          *tracingConfig  `json:"tracing,omitempty"`
	Security         string          `json:"security"`          // noise (default) or plaintext
	ReportDeliveries bool            `json:"report_deliveries"` // send `delivered` for first deliveries
}

type tracingConfig struct {
	OtlpEndpoint string  `json:"otlp_endpoint"`
	SampleRatio  float64 `json:"sample_ratio"`
}

// gossipsubParams is contract/src/plan/group.rs GossipsubParams. Durations travel as
// humantime strings ("1s", "100ms", "1m"); see parseHumanDuration.
type gossipsubParams struct {
	MeshN                 uint32  `json:"mesh_n"`
	MeshNLow              uint32  `json:"mesh_n_low"`
	MeshNHigh             uint32  `json:"mesh_n_high"`
	MeshOutboundMin       uint32  `json:"mesh_outbound_min"`
	GossipLazy            uint32  `json:"gossip_lazy"`
	GossipFactor          float64 `json:"gossip_factor"`
	Heartbeat             string  `json:"heartbeat"`
	HeartbeatInitialDelay string  `json:"heartbeat_initial_delay"`
	HistoryLength         uint32  `json:"history_length"`
	HistoryGossip         uint32  `json:"history_gossip"`
	FanoutTTL             string  `json:"fanout_ttl"`
	FloodPublish          bool    `json:"flood_publish"`
	Validation            string  `json:"validation"`
	MaxTransmitSize       uint32  `json:"max_transmit_size"`
}

// defaultGossipsubParams mirrors GossipsubParams::default(); fields absent from the welcome
// keep these values (the Rust type has #[serde(default)]).
func defaultGossipsubParams() gossipsubParams {
	return gossipsubParams{
		MeshN: 6, MeshNLow: 5, MeshNHigh: 12, MeshOutboundMin: 2, GossipLazy: 6,
		GossipFactor: 0.25, Heartbeat: "1s", HeartbeatInitialDelay: "100ms",
		HistoryLength: 5, HistoryGossip: 3, FanoutTTL: "1m", FloodPublish: true,
		Validation: "strict", MaxTransmitSize: 1 << 20,
	}
}

type command struct {
	Op            string     `json:"op"`
	Peers         []peerAddr `json:"peers"`
	Topics        []string   `json:"topics"`
	WaitMesh      bool       `json:"wait_mesh"`
	MeshTimeoutMs uint64     `json:"mesh_timeout_ms"`
	Topic         string     `json:"topic"`
	Count         uint32     `json:"count"`
	Rate          *float64   `json:"rate"`
	Size          uint32     `json:"size"`
	PeerTimeoutMs uint64     `json:"peer_timeout_ms"`
}

type peerAddr struct {
	Index  uint32 `json:"index"`
	PeerID string `json:"peer_id"`
	Addr   string `json:"addr"`
}

// parseWelcomeConfig decodes the config with gossipsub defaults for absent fields.
func parseWelcomeConfig(raw json.RawMessage) (*nodeConfig, error) {
	cfg := &nodeConfig{Gossipsub: defaultGossipsubParams(), Security: securityNoise}
	if err := json.Unmarshal(raw, cfg); err != nil {
		return nil, err
	}
	switch cfg.Security {
	case securityNoise, securityPlaintext:
	default:
		return nil, fmt.Errorf("config.security %q: expected noise or plaintext", cfg.Security)
	}
	return cfg, nil
}
