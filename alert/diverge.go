package alert

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// Defaults of Divergence.
const (
	// DefaultDivergenceSensitivity is in spreads of the log ratio; with
	// the spread's floor (minLogSpread) a ratio within ×1.28 of the usual
	// one never alerts. On made-up traffic whose overhead and minute
	// lag give a spread of 0.09, the band is ×0.67 to ×1.66 the usual
	// (TestDivergenceNoAlertOnUsualTraffic logs it).
	DefaultDivergenceSensitivity = 5
	// DefaultDivergenceMinBytes, 4 MiB in 5 minutes (about 14 kB/s), is
	// what a period must move, on the wire or in hostd's count, to be
	// judged: below it a few small RPCs and their handshakes make any
	// ratio.
	DefaultDivergenceMinBytes = 4 << 20
	// DefaultDivergencePeriods is how many judged periods in a row fire
	// the alert, and resolve it.
	DefaultDivergencePeriods = 3
)

const (
	// HostdPeriod is hostd's metrics period, the one the divergence is
	// judged over: hostd writes its counters into 5-minute periods.
	HostdPeriod = 5 * time.Minute
	// minutesPerPeriod and wholePeriod: a period's wire bytes are whole
	// when each of its minutes was counted from its start.
	minutesPerPeriod = int(HostdPeriod / time.Minute)
	wholePeriod      = 1<<minutesPerPeriod - 1
	// minRatioHistory is how many judged periods the band needs, 3 hours
	// of RHP traffic: fewer, and one busy afternoon is the usual.
	minRatioHistory = 36
	// minLogSpread floors the spread of ln(ratio), so that a very steady
	// ratio does not alert on hostd writing a minute into the next period.
	minLogSpread = 0.05
)

// RHPSubject is the Subject of a divergence alert: the RHP traffic.
const RHPSubject = "rhp"

// The reasons a period leaves the band (DivergenceDetails.Reason).
const (
	// HostdCountsNone: RHP bytes on the wire while hostd counted none (a
	// hostd before 2.6.0 with QUIC renters, hostd's counters stalled,
	// another process on the ports).
	HostdCountsNone = "hostd_counts_none"
	// WireCountsNone: hostd counted RHP payload while the wire carried
	// none the collector saw (a proxy in front of hostd, the wrong
	// interface or ports).
	WireCountsNone = "wire_counts_none"
	// WireAbovePayload: far more wire bytes than usual for hostd's payload
	// (retransmission storms, abuse, traffic hostd does not count).
	WireAbovePayload = "wire_above_payload"
	// WireBelowPayload: far fewer.
	WireBelowPayload = "wire_below_payload"
)

// Divergence tunes the alert on the RHP bytes the collector counts on the
// wire (siamux and QUIC, both directions) leaving their usual ratio to the
// RHP payload bytes hostd counted (ingress and egress), period by period
// of hostd's (HostdPeriod). Both directions are summed: in one direction
// alone a transfer's other side is mostly acknowledgements, whose ratio to
// a payload of next to nothing means nothing.
//
// A period is judged once hostd's figures for it are stored and the
// collector has counted each of its minutes (a period the daemon was down
// in part of, or hostd was not read for, is not judged: that is no
// divergence), if the wire or hostd moved MinBytes in it. It is out of
// its band when one side is 0 and the other is not, or when ln(wire /
// payload) is more than Sensitivity spreads from the usual: the median
// over the judged periods of the last Days days, the spread their median
// absolute deviation, at least minLogSpread. Until 36 periods are judged
// only the first rule applies. Periods judged out of band in a row fire
// the alert, as many in the band resolve it; periods not judged break
// neither run. Every judged period joins the history, so a lasting change
// (a hostd upgrade that counts QUIC) becomes the usual in about Days / 2.
type Divergence struct {
	// Off turns the divergence alert off; it is off, too, while hostd is
	// not read.
	Off         bool
	Sensitivity float64
	// MinBytes is what a period must move, on the wire or in hostd's
	// count, to be judged.
	MinBytes uint64
	// Periods in a row fire and resolve the alert.
	Periods int
	// Days of history the usual ratio is learned from, at most what the
	// minute rows are kept.
	Days int
}

func (v Divergence) withDefaults() Divergence {
	v.Sensitivity = cmp.Or(v.Sensitivity, DefaultDivergenceSensitivity)
	v.MinBytes = cmp.Or(v.MinBytes, DefaultDivergenceMinBytes)
	v.Periods = cmp.Or(v.Periods, DefaultDivergencePeriods)
	v.Days = cmp.Or(v.Days, DefaultDays)
	return v
}

// hostdCount is what hostd counted in one of its periods, as the
// divergence alert reads it.
type hostdCount struct {
	// Start is the start of the period, on a HostdPeriod boundary.
	Start time.Time
	// RHPBytes is hostd's RHP payload, ingress plus egress.
	RHPBytes uint64
}

// countOf returns what the alert reads of one of hostd's stored periods.
func countOf(f store.HostdFigures) hostdCount {
	return hostdCount{Start: f.Start, RHPBytes: f.RHP.Ingress + f.RHP.Egress}
}

// DivergenceDetails describe a divergence: the period that fired the
// alert (or resolved it) and the band it was judged against.
type DivergenceDetails struct {
	// Reason is why the period was out of its band: HostdCountsNone,
	// WireCountsNone, WireAbovePayload or WireBelowPayload.
	Reason string `json:"reason"`
	// PeriodStart is the start of the last period judged.
	PeriodStart time.Time `json:"period_start"`
	// WireBytes are the RHP bytes on the wire in it (siamux and QUIC,
	// both directions), HostdBytes the RHP payload hostd counted.
	WireBytes  uint64 `json:"wire_rhp_bytes"`
	HostdBytes uint64 `json:"hostd_rhp_bytes"`
	// Ratio is WireBytes / HostdBytes, null when hostd counted none.
	Ratio *float64 `json:"ratio"`
	// Usual, Low and High are the usual ratio and the band around it;
	// null while too little history is judged.
	Usual *float64 `json:"usual_ratio"`
	Low   *float64 `json:"band_low"`
	High  *float64 `json:"band_high"`
	// Periods is how many periods in a row were out of the band when
	// the alert fired.
	Periods int `json:"periods"`
}

// periodSlot is a period's number: its start in unix seconds over its
// length.
func periodSlot(t time.Time) int64 {
	return floorDiv(t.Unix(), int64(HostdPeriod/time.Second))
}

// wire is the RHP bytes the collector counted in one of hostd's periods.
type wire struct {
	bytes   uint64
	minutes uint8 // bit i: the period's minute i was counted from its start
}

// ratioBand is what a period is judged against.
type ratioBand struct {
	ok               bool // enough history
	level, low, high float64
}

// divergence follows the RHP bytes on the wire and in hostd's count,
// period by period. It does no I/O: the alerts it raises wait in out for
// the Detector.
type divergence struct {
	cfg Divergence

	wire    map[int64]*wire   // by period, the last Days
	counted time.Time         // the traffic is consumed up to here
	waiting []hostdCount      // hostd's periods to judge once their wire is whole, in order
	last    int64             // the last period taken from hostd, judged or not
	history map[int64]float64 // ln(wire / payload) of the judged periods, the last Days
	judging bool              // off until the history is learned

	out     int // judged periods out of the band in a row
	in      int // and in it
	start   time.Time
	firing  *Alert
	raised  []Alert
	scratch []float64
}

func newDivergence(cfg Divergence) *divergence {
	return &divergence{cfg: cfg.withDefaults(), wire: make(map[int64]*wire), history: make(map[int64]float64)}
}

// addMinute counts bytes on the wire in the minute starting at minute;
// whole says the minute was counted from its start.
func (v *divergence) addMinute(minute time.Time, bytes uint64, whole bool) {
	n := periodSlot(minute)
	w := v.wire[n]
	if w == nil {
		w = &wire{}
		v.wire[n] = w
	}
	w.bytes += bytes
	if whole {
		w.minutes |= 1 << (minute.Sub(time.Unix(n*int64(HostdPeriod/time.Second), 0)) / time.Minute)
	}
}

// consume counts the RHP rows of a closed period, then judges what hostd
// counted in the periods it completes.
func (v *divergence) consume(p traffic.Period) {
	for i := range p.Rows {
		r := &p.Rows[i]
		v.addMinute(r.Start, rhpBytes(&r.Traffic), false)
	}
	// A minute is counted whole when a period covers it from its start:
	// not the one the daemon started in.
	for m := p.Start.Truncate(time.Minute); m.Before(p.End); m = m.Add(time.Minute) {
		if !m.Before(p.Start) {
			v.addMinute(m, 0, true)
		}
	}
	v.counted = maxTime(v.counted, p.End)
	v.judgeWaiting()
}

// rhpBytes returns t's RHP bytes: siamux and QUIC, both directions.
func rhpBytes(t *traffic.Traffic) uint64 {
	var sum uint64
	for _, c := range []traffic.Class{traffic.Siamux, traffic.QUIC} {
		sum += t[c][traffic.Up].Bytes + t[c][traffic.Down].Bytes
	}
	return sum
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// hostd takes hostd's stored periods, in time order; those before one
// taken already are ignored.
func (v *divergence) hostd(periods []store.HostdFigures) {
	for _, f := range periods {
		if n := periodSlot(f.Start); n > v.last {
			v.waiting = append(v.waiting, countOf(f))
			v.last = n
		}
	}
	v.judgeWaiting()
}

// judgeWaiting judges the periods hostd counted whose wire is counted to
// their end.
func (v *divergence) judgeWaiting() {
	if !v.judging {
		return
	}
	i := 0
	for ; i < len(v.waiting) && !v.counted.Before(v.waiting[i].Start.Add(HostdPeriod)); i++ {
		v.judge(v.waiting[i])
	}
	v.waiting = slices.Delete(v.waiting, 0, i)
	v.forgetBefore(v.counted.Add(-time.Duration(v.cfg.Days) * 24 * time.Hour))
}

// forgetBefore drops the wire and history of the periods before t.
func (v *divergence) forgetBefore(t time.Time) {
	cut := periodSlot(t)
	for n := range v.wire {
		if n < cut {
			delete(v.wire, n)
		}
	}
	for n := range v.history {
		if n < cut {
			delete(v.history, n)
		}
	}
}

// learn adds a period of the history: judged as the band goes, not
// alerted on.
func (v *divergence) learn(c hostdCount) {
	if x, ok, _ := v.measure(c); ok && !math.IsInf(x, 0) {
		v.history[periodSlot(c.Start)] = x
	}
	v.last = max(v.last, periodSlot(c.Start))
}

// measure returns ln(wire / payload) of the period c counts: ±Inf when
// one side is 0. ok is false for a period not judged: its wire not whole,
// or too little moved.
func (v *divergence) measure(c hostdCount) (x float64, ok bool, wireBytes uint64) {
	w := v.wire[periodSlot(c.Start)]
	if w == nil || w.minutes != wholePeriod || max(w.bytes, c.RHPBytes) < v.cfg.MinBytes {
		return 0, false, 0
	}
	switch {
	case c.RHPBytes == 0:
		return math.Inf(1), true, w.bytes
	case w.bytes == 0:
		return math.Inf(-1), true, w.bytes
	}
	return math.Log(float64(w.bytes) / float64(c.RHPBytes)), true, w.bytes
}

// band returns the band of the history before the period n.
func (v *divergence) band(n int64) ratioBand {
	v.scratch = v.scratch[:0]
	for m, x := range v.history {
		if m < n {
			v.scratch = append(v.scratch, x)
		}
	}
	if len(v.scratch) < minRatioHistory {
		return ratioBand{}
	}
	level, mad := medianMAD(v.scratch)
	reach := v.cfg.Sensitivity * max(mad, minLogSpread)
	return ratioBand{ok: true, level: level, low: level - reach, high: level + reach}
}

// judge runs the alert's state on the period c counts.
func (v *divergence) judge(c hostdCount) {
	x, ok, wireBytes := v.measure(c)
	if !ok {
		return
	}
	n := periodSlot(c.Start)
	b := v.band(n)
	if !math.IsInf(x, 0) {
		v.history[n] = x
	}
	reason := ""
	switch {
	case math.IsInf(x, 1):
		reason = HostdCountsNone
	case math.IsInf(x, -1):
		reason = WireCountsNone
	case b.ok && x > b.high:
		reason = WireAbovePayload
	case b.ok && x < b.low:
		reason = WireBelowPayload
	}
	details := func() *DivergenceDetails {
		d := &DivergenceDetails{Reason: reason, PeriodStart: c.Start, WireBytes: wireBytes, HostdBytes: c.RHPBytes, Periods: v.out}
		if c.RHPBytes > 0 {
			d.Ratio = ptr(float64(wireBytes) / float64(c.RHPBytes))
		}
		if b.ok {
			d.Usual, d.Low, d.High = ptr(math.Exp(b.level)), ptr(math.Exp(b.low)), ptr(math.Exp(b.high))
		}
		return d
	}
	end := c.Start.Add(HostdPeriod)
	if reason == "" {
		v.out = 0
		v.in++
		if v.firing != nil && v.in >= v.cfg.Periods {
			done := v.firing.clone()
			done.Status, done.ResolvedAt = Resolved, end
			d := details()
			d.Reason, d.Periods = done.Divergence.Reason, done.Divergence.Periods
			done.Divergence = d
			v.firing = nil
			v.raised = append(v.raised, done)
		}
		return
	}
	v.in = 0
	if v.out == 0 {
		v.start = c.Start
	}
	v.out++
	if v.firing != nil || v.out < v.cfg.Periods {
		return
	}
	a := Alert{
		ID:         newID(string(HostdDivergence), RHPSubject, v.start.UTC().Format(time.RFC3339)),
		Status:     Firing,
		Kind:       HostdDivergence,
		Subject:    RHPSubject,
		StartedAt:  v.start,
		Divergence: details(),
	}
	v.firing = &a
	v.raised = append(v.raised, a.clone())
}

func ptr[T any](v T) *T { return &v }

// restore takes up a divergence that was firing before a restart.
func (v *divergence) restore(a Alert) {
	if a.Status == Firing {
		v.firing = &a
	}
}

// active returns the divergence firing, if any.
func (v *divergence) active() []Alert {
	if v.firing == nil {
		return nil
	}
	return []Alert{v.firing.clone()}
}

// take returns the alerts raised since the last call.
func (v *divergence) take() []Alert {
	out := v.raised
	v.raised = nil
	return out
}

// ratioText writes a ratio for people: "none" when there is none.
func ratioText(r *float64) string {
	if r == nil {
		return "none"
	}
	return fmt.Sprintf("%.3g", *r)
}

// summary says what the divergence is, for the webhook's summary.
func (v *DivergenceDetails) summary(status Status) string {
	if status == Resolved {
		return fmt.Sprintf("RHP bytes on the wire back to their usual ratio to hostd's count: %.3g MB on the wire, %.3g MB counted by hostd in the 5 minutes from %s",
			float64(v.WireBytes)/1e6, float64(v.HostdBytes)/1e6, v.PeriodStart.UTC().Format(time.TimeOnly))
	}
	var what string
	switch v.Reason {
	case HostdCountsNone:
		what = "hostd counted no RHP payload while the wire carried RHP traffic"
	case WireCountsNone:
		what = "hostd counted RHP payload while the wire carried no RHP traffic"
	case WireAbovePayload:
		what = "far more RHP bytes on the wire than usual for hostd's payload"
	case WireBelowPayload:
		what = "far fewer RHP bytes on the wire than usual for hostd's payload"
	}
	return fmt.Sprintf("%s for %d periods of 5 minutes: %.3g MB on the wire, %.3g MB counted by hostd (ratio %s, usually %s, band %s-%s)",
		what, v.Periods, float64(v.WireBytes)/1e6, float64(v.HostdBytes)/1e6, ratioText(v.Ratio), ratioText(v.Usual), ratioText(v.Low), ratioText(v.High))
}

// Hostd hands the detector hostd's periods as they are stored, in time
// order. They are judged once the traffic of each is consumed whole, and
// what they fire is published with the next period consumed. It only
// queues them, and does nothing when the divergence alert is off.
func (d *Detector) Hostd(periods []store.HostdFigures) {
	if d.divergence == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.divergence.hostd(periods)
}

// learnDivergence is Learn's part for the divergence alert: the RHP bytes
// of the minutes stored and hostd's periods stored over the last Days
// days give the usual ratio, and the wire of the periods whose figures
// from hostd arrive late, after an outage of hostd's.
func (d *Detector) learnDivergence(ctx context.Context, now time.Time) error {
	d.mu.Lock()
	off := d.divergence == nil || d.divergence.judging
	d.mu.Unlock()
	if off {
		return nil
	}
	began := time.Now()
	v := d.divergence
	cut := now.Truncate(time.Minute)
	since := now.Truncate(HostdPeriod).AddDate(0, 0, -v.cfg.Days)
	type minute struct {
		start time.Time
		bytes uint64
	}
	var minutes []minute
	err := d.cfg.Store.RHPMinutes(ctx, since, func(m time.Time, bytes uint64) error {
		if m.Before(cut) {
			minutes = append(minutes, minute{m, bytes})
		}
		return nil
	})
	var periods []store.HostdFigures
	if err == nil {
		// Up to a day ahead: all that is stored, whatever the clock did.
		periods, err = d.cfg.Store.HostdPeriods(ctx, since, now.AddDate(0, 0, 1))
	}

	d.mu.Lock()
	for _, m := range minutes {
		v.addMinute(m.start, m.bytes, true)
	}
	for _, f := range periods {
		v.learn(countOf(f))
	}
	v.judging = true
	v.judgeWaiting()
	learned := len(v.history)
	d.mu.Unlock()

	d.cfg.Log.Info("usual ratio of RHP bytes on the wire to hostd's count learned; judging divergence from now on",
		"periods", learned, "periods_needed", minRatioHistory, "took", time.Since(began).Round(time.Millisecond))
	if err != nil {
		return fmt.Errorf("learn the usual ratio of RHP bytes to hostd's count: %w", err)
	}
	return nil
}
