package report

import (
	"fmt"
	"io"

	"github.com/back2basic/collector/beside"
	"github.com/back2basic/collector/store"
)

// writeBesideHostd writes the wire bytes beside hostd's figures: a line
// per class pair, then the paid egress.
func writeBesideHostd(w io.Writer, f *beside.Figures) {
	h := &f.Hostd
	fmt.Fprintf(w, "\nBeside hostd %s (%s to %s, %d periods of 5 minutes):\n", h.Version, f.Since.Format(timeLayout), f.Until.Format(timeLayout), h.Periods)
	lines := [][]string{{"", "WIRE DOWN", "WIRE UP", "HOSTD IN", "HOSTD OUT", "WIRE/HOSTD"}}
	pair := func(name string, wire store.HostdData, payload *store.HostdData, ratio *float64, missing string) {
		if payload == nil {
			lines = append(lines, []string{name, FormatBytes(float64(wire.Ingress)), FormatBytes(float64(wire.Egress)), "-", "-", missing})
			return
		}
		lines = append(lines, []string{name, FormatBytes(float64(wire.Ingress)), FormatBytes(float64(wire.Egress)),
			FormatBytes(float64(payload.Ingress)), FormatBytes(float64(payload.Egress)), formatRatio(ratio)})
	}
	rhp := "rhp (siamux+quic)"
	if !h.QUIC {
		rhp = "rhp (siamux+quic; hostd counts no quic)"
	}
	pair(rhp, f.WireRHP, &h.RHP, f.RatioRHP, "")
	pair("consensus / syncer", f.WireConsensus, h.Syncer, f.RatioConsensus, "hostd before 2.6.0 has no syncer figures")
	writeAligned(w, lines, 1)
	switch {
	case h.PaidEgress == nil:
		fmt.Fprintln(w, "paid egress: unknown (hostd's egress price was 0)")
	case f.UnpaidEgressShare == nil:
		fmt.Fprintf(w, "paid egress: %s, no rhp egress on the wire\n", FormatBytes(float64(*h.PaidEgress)))
	case f.PaidAboveWire:
		fmt.Fprintf(w, "paid egress: %s, more than the %s of rhp egress on the wire: unpaid share 0%% (revenue booked for bytes sent outside the span)\n",
			FormatBytes(float64(*h.PaidEgress)), FormatBytes(float64(f.WireRHP.Egress)))
	default:
		fmt.Fprintf(w, "paid egress: %s at %.2f SC/TB; unpaid share of rhp egress: %.1f%%\n", FormatBytes(float64(*h.PaidEgress)), h.EgressPrice, 100**f.UnpaidEgressShare)
	}
}

// formatRatio writes a ratio of wire to payload bytes.
func formatRatio(r *float64) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("%.3f", *r)
}
