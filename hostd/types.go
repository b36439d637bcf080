package hostd

import (
	"fmt"
	"math/big"
	"net/netip"
	"strconv"
	"time"
)

// Hastings is an amount of siacoin in hastings (10^-24 SC), which hostd
// writes as a decimal string because it does not fit 64 bits.
type Hastings struct{ big.Int }

// UnmarshalJSON reads hostd's quoted decimal string.
func (h *Hastings) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("hastings %s: accepted: a quoted decimal string", b)
	}
	if _, ok := h.SetString(s, 10); !ok || h.Sign() < 0 {
		return fmt.Errorf("hastings %q: accepted: a non-negative decimal integer", s)
	}
	return nil
}

// Data is the payload bytes hostd read and wrote: no headers, no
// retransmissions, no handshakes.
type Data struct {
	Ingress uint64 `json:"ingress"`
	Egress  uint64 `json:"egress"`
}

// Revenue is the part of hostd's revenue metrics collector uses.
type Revenue struct {
	Egress Hastings `json:"egress"`
}

// Metrics is one entry of GET /api/metrics/:period: hostd's running totals
// at the end of the period that starts at Timestamp. Usage in a period is
// the difference between consecutive entries.
type Metrics struct {
	Timestamp time.Time `json:"timestamp"`
	Data      struct {
		RHP Data `json:"rhp"`
		// Syncer is nil where hostd is older than 2.6.0, which did not
		// count its syncer's bytes (nor RHP4 over QUIC).
		Syncer *Data `json:"syncer"`
	} `json:"data"`
	Revenue struct {
		Potential Revenue `json:"potential"`
		Earned    Revenue `json:"earned"`
	} `json:"revenue"`
	Pricing struct {
		// EgressPrice is in hastings per byte.
		EgressPrice Hastings `json:"egressPrice"`
	} `json:"pricing"`
}

// Peer is one entry of GET /api/syncer/peers.
type Peer struct {
	Address string `json:"address"` // host:port, as the peer connected or was dialled
	Inbound bool   `json:"inbound"` // the peer dialled the host
}

// Addr returns the peer's IP address. hostd keeps the address as the
// syncer has it, which for an outbound peer can be a host name: ok is
// false then.
func (p Peer) Addr() (addr netip.Addr, ok bool) {
	ap, err := netip.ParseAddrPort(p.Address)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}
