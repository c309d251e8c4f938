package main

import (
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/sec/insecure"
)

// plaintextSecurity for go-libp2p v0.35, which keeps the insecure transport in
// core/sec/insecure (p2p/security/insecure from v0.37 on). It replaces the node's
// plaintext.go in this variant's build (interop/go/build.sh).
func plaintextSecurity() libp2p.Option {
	return libp2p.Security(insecure.ID, insecure.NewWithIdentity)
}
