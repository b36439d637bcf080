package dashboard_test

import (
	"cmp"
	"context"
	"io"
	"log/slog"
	"maps"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/back2basic/collector/alert"
	"github.com/back2basic/collector/billing"
	"github.com/back2basic/collector/report"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
	"github.com/back2basic/collector/web"
	"github.com/back2basic/collector/web/dashboard"
)

// serve serves the dashboard and the API over the seeded database, with
// the live counters of liveSamples, as the daemon does, at now.
func serve(t *testing.T) string {
	t.Helper()
	st := seedStore(t)
	alerts := newAlerts(t, st)
	return serveWith(t, st, alerts.Active, alerts.QuotaUse)
}

// serveWith is serve over st, with the alerts and quotas given.
func serveWith(t *testing.T, st *store.Store, alerts func() []alert.Alert, quotas func() []alert.QuotaUse) string {
	t.Helper()
	cycle, err := billing.NewCycle(1, now.Location())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := web.New(web.Config{
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Reports: st,
		Live: func() (traffic.OpenPeriod, error) {
			return traffic.OpenPeriod{Since: liveSince, Samples: liveSamples}, nil
		},
		Billing:   cycle,
		Now:       func() time.Time { return now },
		Dashboard: dashboard.Handler(),
		Egress:    egressAsk,
		Alerts:    alerts,
		Quotas:    quotas,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL + "/"
}

// The dashboard in headless Chromium over a seeded database: every figure
// it shows equals what the database holds, or the live counters, in
// binary units; every span draws; the per-client view and the prefixes
// show their own sums; light and dark both render, with no error in the
// console, the Content-Security-Policy's refusals included.
func TestDashboardInBrowser(t *testing.T) {
	ctx := newBrowser(t)
	url := serve(t)
	failOnProblems(t, ctx)

	do(t, ctx, chromedp.Navigate(url))
	waitView(t, ctx, "span=1d&by=client")
	logTransferSize(t, ctx)

	t.Run("billing period", func(t *testing.T) {
		checkBilling(t, ctx, every)
	})
	t.Run("live", func(t *testing.T) {
		checkLive(t, ctx, "")
	})
	t.Run("egress cost", func(t *testing.T) {
		checkEgress(t, ctx)
		checkCosts(t, ctx)
		checkQuotas(t, ctx)
		saveScreenshot(t, ctx, "dashboard-cost.png")
	})
	t.Run("busiest clients of a day", func(t *testing.T) {
		checkBusiest(t, ctx, now.Add(-24*time.Hour), byClient)
		checkRoles(t, ctx, now.Add(-24*time.Hour))
	})
	t.Run("spans", func(t *testing.T) {
		checkClasses(t, ctx, "1d", every)
		saveScreenshot(t, ctx, "dashboard.png")
		for _, span := range []string{"7d", "1m", "3m", "1y", "all"} {
			do(t, ctx, chromedp.Click(chromedp.CSS(`a[data-span="`+span+`"]`)))
			waitView(t, ctx, "span="+span+"&by=client")
			checkClasses(t, ctx, span, every)
		}
	})
	t.Run("prefixes", func(t *testing.T) {
		// One click at a time, each once its view is drawn: the grouping
		// link points at the span shown when it was last drawn.
		do(t, ctx, chromedp.Click(chromedp.CSS(`a[data-span="7d"]`)))
		waitView(t, ctx, "span=7d&by=client")
		do(t, ctx, chromedp.Click(chromedp.CSS(`a[data-by="prefix"]`)))
		waitView(t, ctx, "span=7d&by=prefix")
		checkBusiest(t, ctx, now.Add(-7*24*time.Hour), byPrefix)
		saveScreenshot(t, ctx, "dashboard-prefixes.png")
		if shown := evaluate[bool](t, ctx, `!document.querySelector('#top-table [data-column=role]').hidden`); shown {
			t.Error("the role column is shown for prefixes")
		}
		do(t, ctx, chromedp.Click(chromedp.CSS(`a[data-by="client"]`)))
		waitView(t, ctx, "span=7d&by=client")
		checkRoles(t, ctx, now.Add(-7*24*time.Hour))
		saveScreenshot(t, ctx, "dashboard-roles.png")
	})
	t.Run("client view", func(t *testing.T) {
		const client = "198.51.100.7"
		do(t, ctx, chromedp.Click(chromedp.CSS(`#top-table tr[data-key="`+client+`"] a`)))
		waitView(t, ctx, "span=7d&by=client&client="+client)
		do(t, ctx, chromedp.Click(chromedp.CSS(`a[data-span="1m"]`)))
		waitView(t, ctx, "span=1m&by=client&client="+client)
		checkClasses(t, ctx, "1m", only(client))
		checkBilling(t, ctx, only(client))
		checkLive(t, ctx, client)
		heading := evaluate[string](t, ctx, `document.getElementById('client-ip').textContent + ' ' + document.getElementById('client-dns').textContent`)
		if want := client + " " + names[client]; heading != want {
			t.Errorf("heading %q, want %q", heading, want)
		}
		if hidden := evaluate[bool](t, ctx, `document.getElementById('top').hidden`); !hidden {
			t.Error("the busiest clients are shown in a client's view")
		}
		saveScreenshot(t, ctx, "dashboard-client.png")
		do(t, ctx, chromedp.Click(chromedp.ID("all-clients")))
		waitView(t, ctx, "span=1m&by=client")
	})
	t.Run("light and dark", func(t *testing.T) {
		checkTheme(t, ctx)
	})
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func evaluate[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// viewTimeout bounds the wait for a view: the API answers in
// milliseconds, so a view not drawn by then will not be.
const viewTimeout = 20 * time.Second

// waitView waits until the page has drawn the view key (its address after
// the #), charts included, and its live table.
func waitView(t *testing.T, ctx context.Context, key string) {
	t.Helper()
	wait, cancel := context.WithTimeout(ctx, viewTimeout)
	defer cancel()
	err := chromedp.Do(wait, chromedp.WaitReady(chromedp.CSS(`body[data-loaded="`+key+`"]`)), chromedp.WaitReady(chromedp.CSS(`#live-table[data-at]`)))
	if err != nil {
		shown := evaluate[string](t, ctx, `(document.body.dataset.loaded || 'nothing') + '; error shown: ' + (document.getElementById('status').textContent || 'none')`)
		t.Fatalf("view %s not drawn (%v): the page shows %s", key, err, shown)
	}
	// A chart is drawn once its canvas has a size; uPlot draws on it.
	drawn := evaluate[int](t, ctx, `[...document.querySelectorAll('#chart-up canvas, #chart-down canvas')].filter((c) => c.width > 0 && c.height > 0).length`)
	if drawn != 2 {
		t.Errorf("%s: %d charts drawn, want 2", key, drawn)
	}
}

// checkBilling checks the billing card: the period starting on the 1st
// and the traffic of the seeds keep keeps since.
func checkBilling(t *testing.T, ctx context.Context, keep func(seeded) bool) {
	t.Helper()
	span, err := report.PeriodSpan("billing", now, 1)
	if err != nil {
		t.Fatal(err)
	}
	card := readFigures(t, ctx, "#billing")
	if got, want := card["since"].Value, span.Since.Format(time.RFC3339); got != want {
		t.Errorf("billing period from %s, want %s", got, want)
	}
	if got, want := card["until"].Value, now.Format(time.RFC3339); got != want {
		t.Errorf("billing period to %s, want %s", got, want)
	}
	checkTraffic(t, "billing period", row{Fields: card}, sumSeeds(span.Since, keep, byClient)["total"])
}

// checkLive checks the live table against liveSamples: every active
// client (only client, if given) with its rates over the seconds since
// the last flush.
func checkLive(t *testing.T, ctx context.Context, client string) {
	t.Helper()
	seconds := evaluate[float64](t, ctx, `Number(document.getElementById('live-table').dataset.seconds)`)
	if want := now.Sub(liveSince).Seconds(); seconds != want {
		t.Errorf("live since %gs, want %gs", seconds, want)
	}
	want := map[string]traffic.Traffic{}
	var total traffic.Traffic
	for _, s := range liveSamples {
		if !s.Traffic.IsZero() && (client == "" || s.Client.String() == client) {
			want[s.Client.String()] = s.Traffic
			total.Add(&s.Traffic)
		}
	}
	if client == "" {
		want["total"] = total
	}
	rows := keyed(readRows(t, ctx, "#live-table"))
	if got := slices.Sorted(maps.Keys(rows)); !slices.Equal(got, slices.Sorted(maps.Keys(want))) {
		t.Errorf("live rows %v, want %v", got, slices.Sorted(maps.Keys(want)))
	}
	for key, tr := range want {
		r := rows[key]
		checkTraffic(t, "live "+key, r, tr)
		checkRate(t, "live "+key+" down/s", r.Fields["rate_down"], direction(tr, traffic.Down), seconds)
		checkRate(t, "live "+key+" up/s", r.Fields["rate_up"], direction(tr, traffic.Up), seconds)
	}
}

// checkClasses checks the per-class table of span against the seeds keep
// keeps within it: spans end now and reach back about as far as named.
func checkClasses(t *testing.T, ctx context.Context, span string, keep func(seeded) bool) {
	t.Helper()
	back := map[string]time.Duration{"1d": day, "7d": 7 * day, "1m": 30 * day, "3m": 90 * day, "1y": 365 * day, "all": 3650 * day}[span]
	want := sumSeeds(now.Add(-back), keep, byClient)["total"]
	rows := keyed(readRows(t, ctx, "#classes"))
	for _, c := range traffic.Classes() {
		var only traffic.Traffic
		only[c] = want[c]
		checkTraffic(t, span+" "+c.String(), rows[c.String()], only)
	}
	checkTraffic(t, span+" total", rows["total"], want)
}

// checkBusiest checks the busiest table: the 20 busiest keys (clients or
// prefixes) of the seeds since since, busiest first, the rest summed, and
// the total.
func checkBusiest(t *testing.T, ctx context.Context, since time.Time, key func(seeded) string) {
	t.Helper()
	const top = 20
	all := sumSeeds(since, every, key)
	keys := slices.DeleteFunc(slices.Collect(maps.Keys(all)), func(k string) bool { return k == "total" })
	slices.SortFunc(keys, func(a, b string) int {
		ta, tb := all[a], all[b]
		return cmp.Compare(tb.Bytes(), ta.Bytes())
	})
	var rest traffic.Traffic
	for _, k := range keys[min(top, len(keys)):] {
		tr := all[k]
		rest.Add(&tr)
	}
	keys = keys[:min(top, len(keys))]
	want := append(slices.Clone(keys), "total")
	if !rest.IsZero() {
		want = append(slices.Clone(keys), "rest", "total")
	}
	rows := readRows(t, ctx, "#top-table")
	var got []string
	for _, r := range rows {
		got = append(got, r.Key)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
	all["rest"] = rest
	for _, r := range rows {
		checkTraffic(t, r.Key, r, all[r.Key])
		rate := r.Fields["bytes_per_second"]
		if rate.Text == "" || !strings.HasSuffix(rate.Text, "/s") {
			t.Errorf("%s: average %q", r.Key, rate.Text)
		}
	}
}

// checkRoles checks the role of each client of the busiest table against
// roleSince, and that each role is among the ones a client can have.
func checkRoles(t *testing.T, ctx context.Context, since time.Time) {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range readRows(t, ctx, "#top-table") {
		if r.Key == "rest" || r.Key == "total" {
			continue
		}
		role := r.Fields["role"]
		if want := roleSince(since, r.Key); role.Value != want || role.Text != want {
			t.Errorf("%s: role %q (shown %q), want %q", r.Key, role.Value, role.Text, want)
		}
		if !slices.Contains(store.Roles(), role.Value) {
			t.Errorf("%s: role %q is none of store.Roles()", r.Key, role.Value)
		}
		seen[role.Value] = true
	}
	if len(seen) < 3 {
		t.Errorf("roles shown %v: the seeds have at least renters, peers and other", seen)
	}
}

// checkTheme checks the theme toggle against a system set to dark, and
// saves a screenshot in dark.
func checkTheme(t *testing.T, ctx context.Context) {
	t.Helper()
	dark := emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, dark); err != nil {
		t.Fatal(err)
	}
	background := func() string {
		return evaluate[string](t, ctx, `getComputedStyle(document.documentElement).backgroundColor`)
	}
	const lightBackground, darkBackground = "rgb(245, 246, 248)", "rgb(16, 18, 23)"
	for _, want := range []struct{ theme, background string }{
		{"auto", darkBackground},
		{"light", lightBackground},
		{"dark", darkBackground},
		{"auto", darkBackground},
	} {
		if got := evaluate[string](t, ctx, `document.getElementById('theme').dataset.theme`); got != want.theme {
			t.Fatalf("theme %q, want %q", got, want.theme)
		}
		if got := background(); got != want.background {
			t.Errorf("theme %s: background %s, want %s", want.theme, got, want.background)
		}
		if want.theme == "dark" {
			// Reloaded, so that the screenshot shows the page as it
			// loads in dark, charts drawn in its colours.
			do(t, ctx, chromedp.Reload())
			waitView(t, ctx, "span=1m&by=client")
			saveScreenshot(t, ctx, "dashboard-dark.png")
		}
		do(t, ctx, chromedp.Click(chromedp.ID("theme")))
	}
}

// logTransferSize logs the bytes the page took to load, the API's
// answers aside, as the browser counts them.
func logTransferSize(t *testing.T, ctx context.Context) {
	t.Helper()
	size := evaluate[struct {
		Files, Body, Transfer int
	}](t, ctx, `[...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]
		.filter((e) => !e.name.includes('/api/'))
		.reduce((s, e) => ({ Files: s.Files + 1, Body: s.Body + e.encodedBodySize, Transfer: s.Transfer + e.transferSize }), { Files: 0, Body: 0, Transfer: 0 })`)
	t.Logf("the page loaded %d files: %d bytes of bodies as sent, %d bytes with headers", size.Files, size.Body, size.Transfer)
}
