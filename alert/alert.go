package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/back2basic/collector/traffic"
)

// Kind is what an alert is about.
type Kind string

// The kinds of alerts.
const (
	// ConsensusSpike is consensus (syncer) traffic far above its usual
	// rate at this hour of the day, of the whole host or of one client.
	ConsensusSpike Kind = "consensus_spike"
	// QuotaThreshold is a share of a billing period's quota used up.
	QuotaThreshold Kind = "quota"
	// QuotaProjection is a share of a billing period's quota that the
	// period is projected to use by its end (QUOTA_ON_PROJECTION).
	QuotaProjection Kind = "quota_projection"
	// HostdDivergence is the RHP bytes on the wire out of their usual
	// ratio to the RHP payload hostd counted (see Divergence).
	HostdDivergence Kind = "hostd_divergence"
)

// Status is where an alert stands.
type Status string

// The statuses. An alert fires once and resolves once, both under its ID.
const (
	Firing   Status = "firing"
	Resolved Status = "resolved"
)

// HostSubject is the Subject of a spike of the whole host's traffic.
const HostSubject = "host"

// Alert is one alert, as the journal, the metrics, the webhook and the
// database see it. Its JSON is the body the webhook posts (see Webhook).
type Alert struct {
	// ID is stable: the alert's firing and its resolution share it, and a
	// restart does not change it. It is derived from the kind, the
	// subject and the start (a quota's period and threshold).
	ID     string `json:"id"`
	Status Status `json:"status"`
	Kind   Kind   `json:"kind"`
	// Subject is who or what the alert is about: HostSubject or a client
	// (an address, or "other") for a spike; "up", "down" or "total" for a
	// quota; RHPSubject for a divergence.
	Subject string `json:"subject"`
	// StartedAt is when it began: the start of the first minute of a
	// spike or of the first period of a divergence, or when a quota's
	// threshold was crossed. ResolvedAt is when
	// it ended, zero while it fires.
	StartedAt  time.Time `json:"started_at"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// Spike, Quota or Divergence holds the details of its kind; the
	// others are nil.
	Spike      *SpikeDetails      `json:"spike,omitempty"`
	Quota      *QuotaDetails      `json:"quota,omitempty"`
	Divergence *DivergenceDetails `json:"divergence,omitempty"`
}

// details returns how many of a's details are set: one in an alert read
// back whole.
func (a Alert) details() int {
	n := 0
	for _, set := range []bool{a.Spike != nil, a.Quota != nil, a.Divergence != nil} {
		if set {
			n++
		}
	}
	return n
}

// SpikeDetails describe a traffic spike. Rates are bytes a second, both
// directions summed, over the detector's step (a minute by default).
type SpikeDetails struct {
	Class traffic.Class `json:"class"`
	// Clients are the busiest clients of the step that fired the alert,
	// busiest first: the client itself for a client's spike, up to three
	// for the host's.
	Clients []traffic.Client `json:"clients"`
	// Rate is the rate of the step that fired it; Peak the highest rate
	// of the spike so far.
	Rate float64 `json:"rate_bytes_per_second"`
	Peak float64 `json:"peak_bytes_per_second"`
	// Baseline is the usual rate at this hour of the day; Threshold the
	// rate the spike had to stay above.
	Baseline  float64 `json:"baseline_bytes_per_second"`
	Threshold float64 `json:"threshold_bytes_per_second"`
}

// QuotaDetails describe a quota threshold crossed.
type QuotaDetails struct {
	// Threshold is the share of the quota that fired the alert: 0.8 for
	// 80%.
	Threshold float64 `json:"threshold"`
	Quota     uint64  `json:"quota_bytes"`
	// Used is what the period had used when the alert fired, and all it
	// used once resolved; Share is Used / Quota, or for a projection
	// Projected / Quota.
	Used  uint64  `json:"used_bytes"`
	Share float64 `json:"share"`
	// Projected is, for a projection, what the period was projected to
	// use by its end when the alert fired, and all it used once
	// resolved.
	Projected uint64 `json:"projected_bytes,omitempty"`
	// PeriodStart and PeriodEnd bound the billing period; the alert
	// resolves as it ends.
	PeriodStart time.Time `json:"period_start"`
	PeriodEnd   time.Time `json:"period_end"`
}

// clone returns a copy of a that shares nothing a later change of a's
// details would show through.
func (a Alert) clone() Alert {
	if a.Spike != nil {
		s := *a.Spike
		s.Clients = slices.Clone(s.Clients)
		a.Spike = &s
	}
	if a.Quota != nil {
		q := *a.Quota
		a.Quota = &q
	}
	if a.Divergence != nil {
		// Its pointers are to values never changed in place.
		v := *a.Divergence
		a.Divergence = &v
	}
	return a
}

// Notifier is told of every alert as it fires and as it resolves. Notify
// is called from the flush that found it: it must return at once.
type Notifier interface {
	Notify(a Alert)
}

// newID derives a stable alert id from what identifies the alert.
func newID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "|")))
	return hex.EncodeToString(sum[:8])
}

// spikeID is the id of the spike of subject that started at start.
func spikeID(subject string, start time.Time) string {
	return newID(string(ConsensusSpike), subject, start.UTC().Format(time.RFC3339))
}

// quotaID is the id of the alert of kind (QuotaThreshold or
// QuotaProjection) on threshold of the quota of direction in the billing
// period starting at start.
func quotaID(kind Kind, direction string, start time.Time, threshold float64) string {
	return newID(string(kind), direction, start.UTC().Format(time.RFC3339), fmt.Sprint(threshold))
}

// Summary says what the alert is in one sentence, for people reading a
// chat a webhook posts to.
func (a Alert) Summary() string {
	var s string
	switch {
	case a.Spike != nil:
		who := "the host's"
		if a.Subject != HostSubject {
			who = a.Subject + "'s"
		}
		s = fmt.Sprintf("%s %s traffic at %.3g MB/s, usually %.3g MB/s at this hour (threshold %.3g MB/s)",
			who, a.Spike.Class, a.Spike.Rate/1e6, a.Spike.Baseline/1e6, a.Spike.Threshold/1e6)
		if a.Status == Resolved {
			s = fmt.Sprintf("%s %s traffic back to normal after peaking at %.3g MB/s", who, a.Spike.Class, a.Spike.Peak/1e6)
		}
	case a.Quota != nil && a.Kind == QuotaProjection && a.Status == Firing:
		s = fmt.Sprintf("the billing period is on course to use %.0f%% of its %s quota: %.3g GB of %.3g GB by %s, %.3g GB used so far",
			a.Quota.Share*100, a.Subject, float64(a.Quota.Projected)/1e9, float64(a.Quota.Quota)/1e9, a.Quota.PeriodEnd.Format(time.DateOnly), float64(a.Quota.Used)/1e9)
	case a.Quota != nil:
		s = fmt.Sprintf("%.0f%% of the billing period's %s quota used: %.3g GB of %.3g GB, period ends %s",
			a.Quota.Share*100, a.Subject, float64(a.Quota.Used)/1e9, float64(a.Quota.Quota)/1e9, a.Quota.PeriodEnd.Format(time.DateOnly))
		if a.Status == Resolved {
			s = fmt.Sprintf("billing period over: %.3g GB of the %.3g GB %s quota used (%.0f%%)",
				float64(a.Quota.Used)/1e9, float64(a.Quota.Quota)/1e9, a.Subject, a.Quota.Share*100)
		}
	case a.Divergence != nil:
		s = a.Divergence.summary(a.Status)
	}
	return s
}

// logAlert writes a to the journal: a warning as it fires and as it
// resolves, so that filtering the journal on warnings shows both.
func logAlert(log *slog.Logger, a Alert) {
	attrs := []any{"alert", a.ID, "status", a.Status, "subject", a.Subject, "started", a.StartedAt}
	if a.Status == Resolved {
		attrs = append(attrs, "lasted", a.ResolvedAt.Sub(a.StartedAt).Round(time.Second))
	}
	switch {
	case a.Spike != nil:
		msg := "consensus traffic spike"
		if a.Status == Resolved {
			msg = "consensus traffic spike resolved"
		}
		log.Warn(msg, append(attrs, "class", a.Spike.Class, "clients", a.Spike.Clients,
			"rate_bytes_per_second", int64(a.Spike.Rate), "peak_bytes_per_second", int64(a.Spike.Peak),
			"baseline_bytes_per_second", int64(a.Spike.Baseline), "threshold_bytes_per_second", int64(a.Spike.Threshold))...)
	case a.Quota != nil:
		msg := "billing period quota threshold reached"
		if a.Kind == QuotaProjection {
			msg = "billing period projected past a quota threshold"
			attrs = append(attrs, "projected_bytes", a.Quota.Projected)
		}
		if a.Status == Resolved {
			msg = "billing period over; quota alert resolved"
		}
		log.Warn(msg, append(attrs, "threshold", a.Quota.Threshold, "quota_bytes", a.Quota.Quota,
			"used_bytes", a.Quota.Used, "share", fmt.Sprintf("%.3f", a.Quota.Share), "period_end", a.Quota.PeriodEnd)...)
	case a.Divergence != nil:
		msg := "RHP bytes on the wire diverge from hostd's count"
		if a.Status == Resolved {
			msg = "RHP bytes on the wire back to their usual ratio to hostd's count"
		}
		v := a.Divergence
		log.Warn(msg, append(attrs, "reason", v.Reason, "period", v.PeriodStart, "wire_rhp_bytes", v.WireBytes,
			"hostd_rhp_bytes", v.HostdBytes, "ratio", ratioText(v.Ratio), "usual_ratio", ratioText(v.Usual),
			"band", ratioText(v.Low)+"-"+ratioText(v.High), "periods", v.Periods)...)
	}
}
