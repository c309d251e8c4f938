package main

import (
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/p2p/security/insecure"
)

// plaintextSecurity is go-libp2p's insecure transport (/plaintext/2.0.0). It is the one part
// of the node whose go-libp2p API moved between v0.35 and v0.51: builds of an older era
// replace this file (variants/*/plaintext.go).
func plaintextSecurity() libp2p.Option {
	return libp2p.Security(insecure.ID, insecure.NewWithIdentity)
}
