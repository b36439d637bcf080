package dashboard_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// browserTimeout bounds the whole browser test, a slow CI runner included.
const browserTimeout = 3 * time.Minute

// newBrowser starts headless Chromium (Debian's chromium package) with a
// tab, in UTC as the seeded database, and stops it when t ends. Without
// chromium the test is skipped, except in CI (CI set), which installs it.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("no chromium in PATH; CI must install Debian's chromium package")
		}
		t.Skip("no chromium in PATH (apt-get install chromium): the dashboard is tested in a real browser")
	}
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	t.Cleanup(cancel)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		// Tests run as root in CI's VMs and containers, where Chromium's
		// sandbox cannot start.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1000),
	)
	ctx, cancel = chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancel)
	ctx, cancel = chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	if _, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "UTC"}); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return ctx
}

// watchConsole collects what the page reports as wrong from now on:
// uncaught exceptions, console errors, and the browser's own errors, such
// as a resource refused by the Content-Security-Policy or failing to
// load. problems returns them so far.
func watchConsole(t *testing.T, ctx context.Context) (problems func() []string) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	var (
		mu    sync.Mutex
		found []string
		wg    sync.WaitGroup
	)
	report := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		found = append(found, s)
	}
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	calls := chromedp.Events(ctx, runtime.ConsoleAPICalled)
	entries := chromedp.Events(ctx, cdplog.EntryAdded)
	wg.Go(func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			d := ev.ExceptionDetails
			desc := d.Text
			if d.Exception != nil {
				desc += " " + d.Exception.Description
			}
			report(fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, desc))
		}
	})
	wg.Go(func() {
		for ev, err := range calls {
			if err != nil {
				return
			}
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				report(fmt.Sprintf("console.%s %v", ev.Type, args))
			}
		}
	})
	wg.Go(func() {
		for ev, err := range entries {
			if err != nil {
				return
			}
			if ev.Entry.Level == cdplog.EntryLevelError || ev.Entry.Level == cdplog.EntryLevelWarning {
				report(fmt.Sprintf("%s %s: %s %s", ev.Entry.Source, ev.Entry.Level, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), found...)
	}
}

// failOnProblems fails t, once it ends, if the page reported problems
// (watchConsole) from now on: at its end, so that a failure that ends the
// test early shows them too.
func failOnProblems(t *testing.T, ctx context.Context) {
	t.Helper()
	problems := watchConsole(t, ctx)
	t.Cleanup(func() {
		if p := problems(); len(p) > 0 {
			t.Errorf("the page reported problems:\n%s", strings.Join(p, "\n"))
		}
	})
}

// saveScreenshot saves a full-page PNG of the tab as name in the test's
// artifact directories (see artifactDirs).
func saveScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	for _, dir := range artifactDirs(t) {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Logf("screenshot not saved: %v", err)
			continue
		}
		t.Logf("screenshot %s", path)
	}
}

// artifactDirs are where a test leaves files for people to look at:
// COLLECTOR_ARTIFACTS when set, which CI keeps, and build/artifacts in
// the repository when it can be written; a temporary directory when
// neither can.
func artifactDirs(t *testing.T) []string {
	t.Helper()
	var dirs []string
	if dir := os.Getenv("COLLECTOR_ARTIFACTS"); dir != "" {
		dirs = append(dirs, dir)
	}
	// Tests run in their package's directory, web/dashboard.
	if repo, err := filepath.Abs(filepath.Join("..", "..")); err == nil {
		dirs = append(dirs, filepath.Join(repo, "build", "artifacts"))
	}
	var usable []string
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o755); err == nil {
			usable = append(usable, dir)
		}
	}
	if len(usable) == 0 {
		usable = append(usable, t.TempDir())
	}
	return usable
}
