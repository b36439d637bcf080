// Package beside sets the bytes collector saw on the wire beside what
// hostd counted itself over the same span: payload against wire bytes for
// the renter protocol (siamux and QUIC) and for consensus, and the egress
// hostd was paid for against the RHP egress on the wire.
//
// hostd counts payload only (no headers, retransmissions or handshakes),
// so the wire is normally somewhat above it; the ratio's usual band is the
// divergence alert's business, not this package's.
package beside

import (
	"context"
	"time"

	"github.com/back2basic/collector/hostd"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// Source is where the figures come from; *store.Store is one.
type Source interface {
	TopClients(ctx context.Context, q store.Query, n int, classes []traffic.Class) (store.Top, error)
	HostdSum(ctx context.Context, q store.Query) (store.HostdFigures, bool, error)
	LastHostdPeriod(ctx context.Context) (time.Time, bool, error)
}

// Figures is one span's comparison.
type Figures struct {
	// Since and Until bound the span compared: the one asked for, its
	// end cut at the end of hostd's last stored period, so that a span
	// still running compares the same minutes on both sides.
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// WireRHP and WireConsensus are collector's bytes on the wire of all
	// clients, headers included: siamux plus QUIC, and consensus.
	// Ingress reached the host, egress left it.
	WireRHP       store.HostdData `json:"wire_rhp"`
	WireConsensus store.HostdData `json:"wire_consensus"`
	// Hostd is what hostd counted over the span.
	Hostd store.HostdFigures `json:"hostd"`
	// RatioRHP is WireRHP over hostd's RHP payload, both directions
	// summed; nil when hostd counted none. RatioConsensus is
	// WireConsensus over hostd's syncer payload; nil where hostd has no
	// syncer figures (before 2.6.0) or counted none.
	RatioRHP       *float64 `json:"ratio_rhp"`
	RatioConsensus *float64 `json:"ratio_consensus"`
	// UnpaidEgressShare is the share of RHP egress on the wire nobody
	// paid for: 1 - Hostd.PaidEgress / WireRHP.Egress. nil when the paid
	// bytes are unknown (an egress price of 0) or no RHP egress was seen.
	// When hostd was paid for more than the wire carried (revenue booked
	// for bytes sent before the span, or by hostd on a path collector
	// does not count), it is 0 and PaidAboveWire is true.
	UnpaidEgressShare *float64 `json:"unpaid_egress_share"`
	PaidAboveWire     bool     `json:"paid_above_wire"`
}

// Compare returns the figures of [since, until). ok is false when hostd's
// figures cover no period of it.
func Compare(ctx context.Context, src Source, since, until time.Time) (f Figures, ok bool, err error) {
	last, ok, err := src.LastHostdPeriod(ctx)
	if err != nil || !ok {
		return Figures{}, false, err
	}
	if end := last.Add(hostd.Period); end.Before(until) {
		until = end
	}
	if !since.Before(until) {
		return Figures{}, false, nil
	}
	q := store.Query{Since: since, Until: until}
	h, ok, err := src.HostdSum(ctx, q)
	if err != nil || !ok {
		return Figures{}, false, err
	}
	top, err := src.TopClients(ctx, q, -1, nil)
	if err != nil {
		return Figures{}, false, err
	}
	// Times in the span's zone, as the caller reads them.
	h.Start = h.Start.In(since.Location())
	f = Figures{Since: since, Until: until.In(since.Location()), Hostd: h}
	wire := &top.Rest
	for _, c := range []traffic.Class{traffic.Siamux, traffic.QUIC} {
		f.WireRHP.Ingress += wire[c][traffic.Down].Bytes
		f.WireRHP.Egress += wire[c][traffic.Up].Bytes
	}
	f.WireConsensus = store.HostdData{Ingress: wire[traffic.Consensus][traffic.Down].Bytes, Egress: wire[traffic.Consensus][traffic.Up].Bytes}
	f.RatioRHP = ratio(f.WireRHP, &h.RHP)
	f.RatioConsensus = ratio(f.WireConsensus, h.Syncer)
	if h.PaidEgress != nil && f.WireRHP.Egress > 0 {
		share := 1 - float64(*h.PaidEgress)/float64(f.WireRHP.Egress)
		if share < 0 {
			share, f.PaidAboveWire = 0, true
		}
		f.UnpaidEgressShare = &share
	}
	return f, true, nil
}

// ratio returns wire over payload, both directions summed; nil without
// payload.
func ratio(wire store.HostdData, payload *store.HostdData) *float64 {
	if payload == nil || payload.Ingress+payload.Egress == 0 {
		return nil
	}
	r := float64(wire.Ingress+wire.Egress) / float64(payload.Ingress+payload.Egress)
	return &r
}
