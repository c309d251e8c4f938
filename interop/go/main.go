// pubsub-node-go: a pubsub-testbed node built on go-libp2p and go-libp2p-pubsub. It speaks
// the node contract (docs/node-contract.md) with the orchestrator over the control channel
// named by TESTBED_CONTROL_ADDR, and is launched once per peer.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Exit codes (docs/node-contract.md, "Exit codes"), the same in every implementation.
const (
	exitCodeOK      = 0   // finished, or aborted by the orchestrator; the result was sent
	exitCodeFailed  = 1   // the node failed; a result with exit "error" was sent if possible
	exitCodeUsage   = 2   // the environment is incomplete or invalid (see stderr)
	exitCodeControl = 3   // the control channel could not be opened, or it was lost
	exitCodeSIGINT  = 130 // stopped by SIGINT (result with exit "aborted" sent)
	exitCodeSIGTERM = 143 // stopped by SIGTERM (result with exit "aborted" sent)
)

type nodeEnv struct {
	controlAddr string
	index       uint32
	runID       string
	listenIP    string
	secret      string // TESTBED_RUN_SECRET, sent in hello only (never logged)
}

func readEnv() (nodeEnv, error) {
	env := nodeEnv{
		controlAddr: os.Getenv("TESTBED_CONTROL_ADDR"),
		runID:       os.Getenv("TESTBED_RUN_ID"),
		listenIP:    os.Getenv("TESTBED_LISTEN_IP"),
		secret:      os.Getenv("TESTBED_RUN_SECRET"),
	}
	if env.controlAddr == "" {
		return env, fmt.Errorf("TESTBED_CONTROL_ADDR is not set (tcp://HOST:PORT or unix:/PATH); this program is launched by the orchestrator")
	}
	if env.listenIP == "" {
		env.listenIP = "127.0.0.1"
	}
	name, text := "TESTBED_NODE_INDEX", os.Getenv("TESTBED_NODE_INDEX")
	if text == "" {
		name, text = "JOB_COMPLETION_INDEX", os.Getenv("JOB_COMPLETION_INDEX")
	}
	if text == "" {
		return env, fmt.Errorf("TESTBED_NODE_INDEX (or JOB_COMPLETION_INDEX) is not set")
	}
	i, err := strconv.ParseUint(text, 10, 32)
	if err != nil {
		return env, fmt.Errorf("%s=%q is not a node index (0, 1, 2, …)", name, text)
	}
	env.index = uint32(i)
	return env, nil
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "--version", "-V":
			fmt.Println("pubsub-node-go,", implVersion())
			return
		default:
			fmt.Fprintln(os.Stderr, "usage: pubsub-node-go [--version]\n\nConfigured through TESTBED_CONTROL_ADDR, TESTBED_NODE_INDEX, TESTBED_LISTEN_IP, TESTBED_RUN_ID and TESTBED_RUN_SECRET; see docs/node-contract.md.")
			os.Exit(exitCodeUsage)
		}
	}
	startNs := nowNs()
	env, err := readEnv()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pubsub-node-go: %v\n", err)
		os.Exit(exitCodeUsage)
	}
	ctrl, err := dialControl(env.controlAddr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pubsub-node-go[%d]: %v\n", env.index, err)
		code := exitCodeControl
		if strings.Contains(err.Error(), "expected tcp://") {
			code = exitCodeUsage
		}
		os.Exit(code)
	}
	n, err := newNode(env, ctrl, startNs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pubsub-node-go[%d]: %v\n", env.index, err)
		os.Exit(exitCodeFailed)
	}
	os.Exit(n.run())
}
