package alert

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/back2basic/collector/traffic"
)

// Defaults of Spike.
const (
	DefaultSensitivity = 6
	// DefaultMinRate, 128 KiB/s (about 1 Mbit/s, 330 GB a month if it
	// lasted), is far above what a healthy syncer moves, blocks and
	// transactions relayed to a few dozen peers at kilobytes a second, so
	// that against a tiny baseline those cannot look like a spike; and
	// far below what a peer pulling the whole chain moves.
	DefaultMinRate    = 128 << 10
	DefaultDays       = 7
	DefaultSustain    = 3 * time.Minute
	DefaultResolve    = 5 * time.Minute
	DefaultCooldown   = 30 * time.Minute
	DefaultMaxClients = 256
)

const (
	// minHistoryDays is how many days of the same hour a baseline needs
	// before it judges anything: fewer, and one odd day is the baseline.
	minHistoryDays = 3
	// minSpreadShare floors the spread at a share of the baseline, so that
	// a very regular series does not alert on a small rise: at the default
	// sensitivity, a rise of less than 60% never alerts.
	minSpreadShare = 0.1
	// hostClients is how many clients a host spike names.
	hostClients = 3
)

// Spike tunes the detection of consensus traffic spikes; the zero value of
// each field gives its default.
//
// Each step (a minute) has a rate per subject: the host, and each client
// with consensus traffic of its own. For every hour of the last Days days
// the detector keeps the median and the median absolute deviation (MAD) of
// the hour's step rates. A step is judged against the same (UTC) hour of
// the day on earlier days: the baseline is the median of those hours'
// medians, the spread the median of their MADs plus the MAD of their
// medians (the day-to-day variation), and at least a tenth of the
// baseline. A step is high above max(MinRate, baseline + Sensitivity ×
// spread). A spike fires after Sustain of high steps in a row, and
// resolves after Resolve of steps in a row below half-way between its
// baseline and its threshold; a subject whose spike resolved fires again
// only after Cooldown. The history is read back from the database by
// Detector.Learn, so a restart forgets nothing.
type Spike struct {
	// Off turns spike detection off.
	Off bool
	// Sensitivity is how many spreads above its baseline a step must be
	// to count as high; lower alerts on smaller spikes.
	Sensitivity float64
	// MinRate, in bytes a second, is what a step must exceed to count as
	// high whatever its baseline, so that a quiet host or client cannot
	// alert on a few kilobytes.
	MinRate float64
	// Days of history the baselines are learned from; spikes are judged
	// once the database holds 3 days (or Days, if fewer) of the hour. The
	// minute rows' retention bounds it.
	Days int
	// Sustain, Resolve and Cooldown: see above; rounded up to whole steps.
	Sustain, Resolve, Cooldown time.Duration
	// MaxClients bounds the clients followed, each with Days × 24 hours of
	// history (about 1.3 KiB for 7 days). Past it, the client seen least
	// lately without a spike in progress makes room; a client not
	// followed still counts in the host's traffic.
	MaxClients int
	// Step is what each rate is measured over: the flush interval, when
	// longer than a minute; rounded up to whole minutes, at most an hour.
	Step time.Duration
}

func (s Spike) withDefaults() Spike {
	s.Sensitivity = cmp.Or(s.Sensitivity, DefaultSensitivity)
	s.MinRate = cmp.Or(s.MinRate, DefaultMinRate)
	s.Days = cmp.Or(s.Days, DefaultDays)
	s.Sustain = cmp.Or(s.Sustain, DefaultSustain)
	s.Resolve = cmp.Or(s.Resolve, DefaultResolve)
	s.Cooldown = cmp.Or(s.Cooldown, DefaultCooldown)
	s.MaxClients = cmp.Or(s.MaxClients, DefaultMaxClients)
	s.Step = min(max(s.Step, time.Minute), time.Hour)
	s.Step = (s.Step + time.Minute - 1).Truncate(time.Minute)
	return s
}

// steps returns d in whole steps, rounded up, at least one.
func (s Spike) steps(d time.Duration) int {
	return max(int((d+s.Step-1)/s.Step), 1)
}

// summary is the median and MAD of one hour's step rates.
type summary struct{ median, mad float32 }

// subject is the host or one client, followed for spikes.
type subject struct {
	name     string
	client   traffic.Client // of a client's subject
	hours    []summary      // by hour number mod the ring's length
	rates    []float32      // this hour's step rates, by step
	seen     time.Time      // the last step it moved bytes in
	base     baseline       // for the hour baseHour
	hasBase  bool
	baseHour int64

	high      int       // high steps in a row
	start     time.Time // the first of them
	peak      float64   // their highest rate
	quiet     int       // steps in a row below the firing alert's resolve rate
	firing    *Alert
	coolUntil time.Time
}

// baseline is what a step is judged against.
type baseline struct {
	ok            bool // enough history
	level, spread float64
}

// spikes follows the rates of the host and its clients, step by step, and
// judges every closed step. It does no I/O: the alerts it raises wait in
// out for the Detector.
type spikes struct {
	cfg              Spike
	stepsPerHour     int
	sustain, resolve int

	// observed holds, by hour number mod its length, the numbers of the
	// hours in which steps were counted; the subjects' summaries of
	// other hours are stale.
	observed []int64
	hour     int64  // the hour being filled
	counted  []bool // its steps that were counted

	open        time.Time // start of the step being counted, or of the last one
	isOpen      bool      // whether open is being counted
	hostBytes   uint64
	clientBytes map[traffic.Client]uint64

	host    *subject
	clients map[traffic.Client]*subject
	judging bool // off while Learn replays the history

	out     []Alert
	scratch []float64
}

func newSpikes(cfg Spike) *spikes {
	cfg = cfg.withDefaults()
	s := &spikes{
		cfg:          cfg,
		stepsPerHour: int((time.Hour + cfg.Step - 1) / cfg.Step),
		sustain:      cfg.steps(cfg.Sustain),
		resolve:      cfg.steps(cfg.Resolve),
		observed:     make([]int64, cfg.Days*24),
		clientBytes:  make(map[traffic.Client]uint64),
		clients:      make(map[traffic.Client]*subject),
	}
	for i := range s.observed {
		s.observed[i] = -1
	}
	s.counted = make([]bool, s.stepsPerHour)
	s.host = s.newSubject(HostSubject, traffic.Other)
	return s
}

func (s *spikes) newSubject(name string, c traffic.Client) *subject {
	return &subject{name: name, client: c, hours: make([]summary, len(s.observed)), rates: make([]float32, s.stepsPerHour)}
}

// hourOf returns the number of the UTC hour holding t.
func hourOf(t time.Time) int64 {
	return floorDiv(t.Unix(), 3600)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// slot returns where hour h is kept in the rings.
func (s *spikes) slot(h int64) int {
	n := int64(len(s.observed))
	return int((h%n + n) % n)
}

// add counts bytes of client in the minute starting at minute. A minute
// of a step already judged is ignored: it can only come from a consumer
// that failed, and Consume does not fail.
func (s *spikes) add(minute time.Time, client traffic.Client, bytes uint64) {
	step := minute.Truncate(s.cfg.Step)
	if step.Before(s.open) || step.Equal(s.open) && !s.isOpen {
		return
	}
	if !step.Equal(s.open) {
		s.closeStep()
		s.openStep(step)
	}
	s.hostBytes += bytes
	if bytes > 0 {
		s.clientBytes[client] += bytes
	}
}

// consume counts a closed period and judges the step it closes, if any.
func (s *spikes) consume(p traffic.Period) {
	if p.End.After(p.Start) {
		// The period was counted, with or without rows.
		s.add(p.Start.Truncate(time.Minute), traffic.Other, 0)
	}
	for i := range p.Rows {
		r := &p.Rows[i]
		s.add(r.Start, r.Client, r.Traffic[traffic.Consensus][traffic.Up].Bytes+r.Traffic[traffic.Consensus][traffic.Down].Bytes)
	}
	s.closeBefore(p.End)
}

// closeBefore closes the open step if it ends by t.
func (s *spikes) closeBefore(t time.Time) {
	if s.isOpen && !t.Before(s.open.Add(s.cfg.Step)) {
		s.closeStep()
	}
}

func (s *spikes) openStep(step time.Time) {
	if h := hourOf(step); h != s.hour {
		s.closeHour()
		s.hour = h
	}
	s.open, s.isOpen = step, true
}

// closeStep takes the rates of the open step and judges them.
func (s *spikes) closeStep() {
	if !s.isOpen {
		return
	}
	i := stepIndex(s.open, s.hour, s.cfg.Step)
	s.counted[i] = true
	secs := s.cfg.Step.Seconds()
	for c := range s.clientBytes {
		if _, ok := s.clients[c]; !ok {
			s.follow(c)
		}
	}
	s.host.rates[i] = float32(float64(s.hostBytes) / secs)
	if s.hostBytes > 0 {
		s.host.seen = s.open
	}
	for c, sub := range s.clients {
		bytes := s.clientBytes[c]
		sub.rates[i] = float32(float64(bytes) / secs)
		if bytes > 0 {
			sub.seen = s.open
		}
	}
	if s.judging {
		s.judge(s.host, float64(s.hostBytes)/secs)
		for c, sub := range s.clients {
			s.judge(sub, float64(s.clientBytes[c])/secs)
		}
	}
	s.hostBytes = 0
	clear(s.clientBytes)
	s.isOpen = false
}

// stepIndex returns the index of the step of length d starting at t within
// hour h.
func stepIndex(t time.Time, h int64, d time.Duration) int {
	return int((t.Unix() - h*3600) / int64(d.Seconds()))
}

// busiest returns the n clients that moved the most in the open step.
func (s *spikes) busiest(n int) []traffic.Client {
	clients := make([]traffic.Client, 0, len(s.clientBytes))
	for c := range s.clientBytes {
		clients = append(clients, c)
	}
	slices.SortFunc(clients, func(a, b traffic.Client) int {
		return cmp.Or(cmp.Compare(s.clientBytes[b], s.clientBytes[a]), a.Compare(b))
	})
	return clients[:min(n, len(clients))]
}

// follow starts following c, making room if need be, unless every
// subject followed has a spike in progress.
func (s *spikes) follow(c traffic.Client) {
	if len(s.clients) >= s.cfg.MaxClients {
		var (
			oldest traffic.Client
			found  bool
		)
		for k, sub := range s.clients {
			if sub.busy() {
				continue
			}
			if !found || sub.seen.Before(s.clients[oldest].seen) {
				oldest, found = k, true
			}
		}
		if !found {
			return
		}
		delete(s.clients, oldest)
	}
	s.clients[c] = s.newSubject(c.String(), c)
}

// busy reports whether sub has a spike firing or starting.
func (sub *subject) busy() bool {
	return sub.firing != nil || sub.high > 0
}

// closeHour keeps the summaries of the hour being filled, if any of its
// steps was counted, and stops following the clients quiet for Days.
func (s *spikes) closeHour() {
	if !slices.Contains(s.counted, true) {
		return
	}
	slot := s.slot(s.hour)
	s.observed[slot] = s.hour
	for _, sub := range s.all() {
		sub.hours[slot] = s.summarize(sub.rates)
		clear(sub.rates)
	}
	clear(s.counted)
	forgotten := time.Unix(s.hour*3600, 0).AddDate(0, 0, -s.cfg.Days)
	for c, sub := range s.clients {
		if !sub.busy() && sub.seen.Before(forgotten) {
			delete(s.clients, c)
		}
	}
}

// all returns the host and every client followed.
func (s *spikes) all() []*subject {
	out := []*subject{s.host}
	for _, sub := range s.clients {
		out = append(out, sub)
	}
	return out
}

// summarize returns the median and MAD of the counted steps of rates.
func (s *spikes) summarize(rates []float32) summary {
	s.scratch = s.scratch[:0]
	for i, r := range rates {
		if s.counted[i] {
			s.scratch = append(s.scratch, float64(r))
		}
	}
	m, d := medianMAD(s.scratch)
	return summary{float32(m), float32(d)}
}

// baseline returns what the steps of hour h are judged against for sub.
func (s *spikes) baseline(sub *subject, h int64) baseline {
	if sub.hasBase && sub.baseHour == h {
		return sub.base
	}
	var medians, mads []float64
	for d := int64(1); d <= int64(s.cfg.Days); d++ {
		past := h - 24*d
		if slot := s.slot(past); s.observed[slot] == past {
			medians = append(medians, float64(sub.hours[slot].median))
			mads = append(mads, float64(sub.hours[slot].mad))
		}
	}
	var b baseline
	if len(medians) >= min(minHistoryDays, s.cfg.Days) {
		level, dayToDay := medianMAD(medians)
		within, _ := medianMAD(mads)
		b = baseline{ok: true, level: level, spread: max(within+dayToDay, level*minSpreadShare)}
	}
	sub.base, sub.hasBase, sub.baseHour = b, true, h
	return b
}

// judge runs sub's spike state on the rate of the step that just closed.
func (s *spikes) judge(sub *subject, rate float64) {
	start := s.open
	end := start.Add(s.cfg.Step)
	if a := sub.firing; a != nil {
		a.Spike.Peak = max(a.Spike.Peak, rate)
		if rate < (a.Spike.Baseline+a.Spike.Threshold)/2 {
			sub.quiet++
		} else {
			sub.quiet = 0
		}
		if sub.quiet >= s.resolve {
			done := a.clone()
			done.Status, done.ResolvedAt = Resolved, end
			sub.firing, sub.quiet, sub.coolUntil = nil, 0, end.Add(s.cfg.Cooldown)
			s.out = append(s.out, done)
		}
		return
	}
	b := s.baseline(sub, hourOf(start))
	threshold := max(s.cfg.MinRate, b.level+s.cfg.Sensitivity*b.spread)
	if !b.ok || rate <= threshold {
		sub.high = 0
		return
	}
	if sub.high == 0 {
		sub.start, sub.peak = start, 0
	}
	sub.high++
	sub.peak = max(sub.peak, rate)
	if sub.high < s.sustain || end.Before(sub.coolUntil) {
		return
	}
	clients := []traffic.Client{sub.client}
	if sub == s.host {
		clients = s.busiest(hostClients)
	}
	a := Alert{
		ID:        spikeID(sub.name, sub.start),
		Status:    Firing,
		Kind:      ConsensusSpike,
		Subject:   sub.name,
		StartedAt: sub.start,
		Spike: &SpikeDetails{Class: traffic.Consensus, Clients: clients, Rate: rate, Peak: sub.peak,
			Baseline: b.level, Threshold: threshold},
	}
	sub.firing, sub.high, sub.quiet = &a, 0, 0
	s.out = append(s.out, a.clone())
}

// restore takes up a spike that was firing or cooling down before a
// restart.
func (s *spikes) restore(a Alert, now time.Time) {
	sub := s.host
	if a.Subject != HostSubject {
		c, err := traffic.ParseClient(a.Subject)
		if err != nil {
			return
		}
		if sub = s.clients[c]; sub == nil {
			// Past MaxClients if need be: these were followed.
			sub = s.newSubject(c.String(), c)
			sub.seen = now
			s.clients[c] = sub
		}
	}
	if a.Status == Firing {
		sub.firing = &a
		return
	}
	sub.coolUntil = a.ResolvedAt.Add(s.cfg.Cooldown)
}

// active returns the spikes firing.
func (s *spikes) active() []Alert {
	var out []Alert
	for _, sub := range s.all() {
		if sub.firing != nil {
			out = append(out, sub.firing.clone())
		}
	}
	return out
}

// take returns the alerts raised since the last call.
func (s *spikes) take() []Alert {
	out := s.out
	s.out = nil
	return out
}

// medianMAD returns the median of xs and their median absolute deviation
// from it; xs is reordered. Both are 0 for no xs.
func medianMAD(xs []float64) (median, mad float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	median = medianOf(xs)
	for i, x := range xs {
		xs[i] = math.Abs(x - median)
	}
	return median, medianOf(xs)
}

// medianOf sorts xs and returns their median.
func medianOf(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}
