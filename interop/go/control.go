package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
)

// control is the node's end of the control channel: newline-delimited JSON, one message per
// line, written by any goroutine (serialised here) and read by one reader goroutine.
type control struct {
	conn   net.Conn
	mu     sync.Mutex
	w      *bufio.Writer
	closed bool
}

// dialControl opens TESTBED_CONTROL_ADDR: "tcp://host:port" or "unix:/path".
func dialControl(addr string) (*control, error) {
	var network, target string
	switch {
	case strings.HasPrefix(addr, "tcp://"):
		network, target = "tcp", strings.TrimPrefix(addr, "tcp://")
	case strings.HasPrefix(addr, "unix:"):
		network, target = "unix", strings.TrimPrefix(strings.TrimPrefix(addr, "unix:"), "//")
	default:
		return nil, fmt.Errorf("TESTBED_CONTROL_ADDR %q: expected tcp://HOST:PORT or unix:/PATH", addr)
	}
	conn, err := net.Dial(network, target)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the orchestrator at %s: %w", addr, err)
	}
	return &control{conn: conn, w: bufio.NewWriter(conn)}, nil
}

// send writes one message as a line. After close it is a no-op.
func (c *control) send(msg any) error {
	line, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("control channel closed")
	}
	if _, err := c.w.Write(append(line, '\n')); err != nil {
		return err
	}
	return c.w.Flush()
}

// sendFinal writes the last message and closes the channel, so nothing can follow it.
func (c *control) sendFinal(msg any) error {
	line, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("control channel closed")
	}
	c.closed = true
	_, err = c.w.Write(append(line, '\n'))
	if err == nil {
		err = c.w.Flush()
	}
	_ = c.conn.Close()
	return err
}

func (c *control) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		_ = c.w.Flush()
		_ = c.conn.Close()
	}
}

// readLoop delivers every orchestrator message on out; a line that is not a valid message
// is reported on errs (the node logs it and goes on). out is closed at EOF. A ping is
// answered here at once, whatever the node is busy with, with the time the line was read.
func (c *control) readLoop(out chan<- orchMsg, errs chan<- error) {
	defer close(out)
	r := bufio.NewReaderSize(c.conn, 64*1024)
	for {
		line, err := r.ReadBytes('\n')
		at := nowNs()
		if len(strings.TrimSpace(string(line))) > 0 {
			var m orchMsg
			if jerr := json.Unmarshal(line, &m); jerr != nil {
				errs <- fmt.Errorf("malformed control message %q: %v", truncate(string(line), 200), jerr)
			} else if m.Type == "ping" {
				_ = c.send(pongMsg{Type: "pong", ID: m.ID, AtNs: at})
			} else {
				out <- m
			}
		}
		if err != nil {
			return
		}
	}
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
