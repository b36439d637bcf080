//go:build serviceguest

package packaging

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/back2basic/collector/internal/testkit/kerneltest"
	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/lab"
	"github.com/back2basic/collector/traffic"
)

const (
	envFile = "/etc/collector.env"
	dbFile  = "/var/lib/collector/collector.db"
	pinDir  = "/sys/fs/bpf/collector"
	dropIn  = "/etc/systemd/system/collector.service.d/vmtest.conf"
	// The second interface of step 5: a veth pair in the root namespace.
	otherIf, otherPeer = "colx0", "colx1"
	// restartSec is the unit's RestartSec.
	restartSec = 5 * time.Second
	// startTimeout bounds a start: systemd's DefaultTimeoutStartSec, 90 s
	// (a start under emulation and traffic has taken 30 s), and a margin.
	startTimeout = 100 * time.Second
)

// serviceGuest is the state the steps hand on to each other.
type serviceGuest struct {
	deb     string
	lab     *lab.Lab
	counted map[netip.Addr]traffic.Traffic // the capture's total so far
	mark    int                            // journal lines seen before this step
}

// TestServiceGuest is the life of the Debian package under a real
// systemd: installed with dpkg, enabled, counting real traffic, restarted
// and killed under traffic, moved to another interface, refused
// privileges, failing in a restart loop while it is removed, and purged.
// It changes the machine it runs on (a package, the root network
// namespace, the unit's state), so it is built only with the serviceguest
// tag and runs only in the VM that `make test-service-guest` boots
// (vmtest/test-service.sh).
func TestServiceGuest(t *testing.T) {
	kerneltest.RequireRoot(t)
	if os.Getenv("COLLECTOR_SERVICE_GUEST") != "1" {
		t.Fatal("this test installs a package and builds its lab in the root network namespace: it runs only in the VM of make test-service-guest (COLLECTOR_SERVICE_GUEST=1)")
	}
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		t.Fatalf("systemd is not PID 1 here: %v", err)
	}
	g := &serviceGuest{deb: os.Getenv("COLLECTOR_DEB"), counted: map[netip.Addr]traffic.Traffic{}}
	t.Logf("kernel %s, package %s", kerneltest.Release(), filepath.Base(g.deb))
	t.Cleanup(func() {
		// The whole story, pass or fail: it is what the console log is
		// read for.
		out, _ := exec.Command("journalctl", "-u", "collector", "--no-pager", "-o", "short-iso-precise").CombinedOutput()
		t.Logf("journalctl -u collector:\n%s", out)
		if g.lab != nil {
			g.lab.Close()
		}
		exec.Command("ip", "link", "del", otherIf).Run()
	})
	for _, step := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"1 install: check fails, unit left disabled", g.install},
		{"2 lab in the root namespace, enable --now", g.enable},
		{"3 traffic counted exactly", g.traffic},
		{"4 restart and SIGKILL under traffic lose nothing", g.restarts},
		{"5 interface left out of INTERFACE is detached", g.otherInterface},
		{"6a missing capability: exit 3, no restart", g.noCapability},
		{"6b dpkg -r during a pending restart", g.removeWhileRestarting},
		{"7 purge leaves nothing", g.purge},
	} {
		if !t.Run(step.name, step.run) {
			t.FailNow() // each step builds on the one before
		}
	}
}

// 1. With no default route and INTERFACE unset, collector check fails:
// dpkg -i still succeeds, says what to do and leaves the unit disabled.
func (g *serviceGuest) install(t *testing.T) {
	if g.deb == "" {
		t.Fatal("COLLECTOR_DEB names no package")
	}
	if out, _ := exec.Command("ip", "route", "show", "default").Output(); len(out) > 0 {
		t.Fatalf("the guest has a default route, so collector check would pass: %s", out)
	}
	out := mustRun(t, "dpkg", "-i", g.deb)
	t.Logf("dpkg -i said:\n%s", out)
	for _, want := range []string{"no default route", "collector is installed but not enabled: fix what collector check reports above"} {
		if !strings.Contains(out, want) {
			t.Errorf("dpkg -i did not say %q:\n%s", want, out)
		}
	}
	wantUnit(t, map[string]string{"LoadState": "loaded", "UnitFileState": "disabled", "ActiveState": "inactive"})
}

// 2. The lab's host end in the root namespace, where the service runs;
// INTERFACE names it. Type=notify: enable --now returns once it counts.
func (g *serviceGuest) enable(t *testing.T) {
	l, err := lab.New(lab.Options{HostInCurrentNS: true})
	if err != nil {
		t.Fatal(err)
	}
	g.lab = l
	if env := readFile(t, envFile); !strings.Contains(string(env), "\nPINNED_MAPS=1\n") {
		t.Fatalf("the package's %s does not pin:\n%s", envFile, env)
	}
	setEnv(t, "INTERFACE", l.HostIf)
	if !kerneltest.AtLeast(5, 11) {
		g.memlockNeeded(t)
	}
	g.mark = journalLen(t)
	mustRun(t, "systemctl", "enable", "--now", "collector")
	p := wantUnit(t, map[string]string{"UnitFileState": "enabled", "ActiveState": "active", "SubState": "running"})
	g.waitJournal(t, "msg=counting", "interface="+l.HostIf, "kept_pinned_links=false")
	g.waitJournal(t, `msg="collector started"`, "pinned=true")

	// Kernels before 5.11 charge the maps just created to RLIMIT_MEMLOCK,
	// which the daemon cannot raise itself: the unit's LimitMEMLOCK.
	limits := string(readFile(t, "/proc/"+p["MainPID"]+"/limits"))
	if !regexp.MustCompile(`Max locked memory\s+unlimited\s+unlimited`).MatchString(limits) {
		t.Errorf("the daemon's memlock limit is not unlimited:\n%s", limits)
	}
	if !kerneltest.AtLeast(5, 11) {
		t.Logf("kernel %s charges BPF maps to memlock: they loaded under LimitMEMLOCK=infinity", kerneltest.Release())
	}
}

// memlockNeeded shows on a kernel before 5.11 that the unit's
// LimitMEMLOCK=infinity is what lets the maps load: with a limit of 64K
// the start fails, saying MEMLOCK may be too low.
func (g *serviceGuest) memlockNeeded(t *testing.T) {
	writeDropIn(t, "[Service]\nLimitMEMLOCK=64K\n")
	g.mark = journalLen(t)
	if out, err := runCmd("systemctl", "start", "collector"); err == nil {
		t.Fatalf("kernel %s loaded the maps under LimitMEMLOCK=64K:\n%s", kerneltest.Release(), out)
	}
	// cilium/ebpf's "MEMLOCK may be too low", or a hint of our own.
	g.waitJournal(t, "MEMLOCK")
	t.Logf("with LimitMEMLOCK=64K the start failed, status %s", unitProps(t)["ExecMainStatus"])
	mustRun(t, "systemctl", "stop", "collector") // a restart it may have scheduled
	removeDropIn(t)
	mustRun(t, "systemctl", "reset-failed", "collector")
	if _, err := os.Stat(filepath.Join(pinDir, "links")); !os.IsNotExist(err) {
		t.Fatalf("the failed start left pinned links (%v)", err)
	}
}

// 3. Real TCP 9981 (both ways), TCP 9984 and UDP 9984 from every client,
// stored exactly as an AF_PACKET capture on the same link counted them.
func (g *serviceGuest) traffic(t *testing.T) {
	counted := labtest.CapturedRounds(t, g.lab, 3)
	// Stopping drains and stores what was counted.
	mustRun(t, "systemctl", "stop", "collector")
	wantUnit(t, map[string]string{"ActiveState": "inactive", "Result": "success"})
	g.add(counted)
	labtest.AssertSame(t, labtest.Stored(t, dbFile), g.counted)
}

// 4. Traffic flows on while systemd restarts the service, and while it is
// killed and restarted by Restart=on-failure: the pinned programs count
// throughout, and the totals still equal the capture.
func (g *serviceGuest) restarts(t *testing.T) {
	mustRun(t, "systemctl", "start", "collector")
	// A round every 250 ms at most, not back to back: under emulation
	// the guest's two CPUs are then not all traffic, and a start (the
	// verifier at work) stays well within systemd's start timeout. Each
	// gap without a daemon (RestartSec alone is 5 s) still sees many
	// rounds.
	stopTraffic := labtest.SteadyTraffic(t, g.lab, 250*time.Millisecond)
	time.Sleep(3 * time.Second)

	g.mark = journalLen(t)
	mustRun(t, "systemctl", "restart", "collector")
	g.waitJournal(t, "msg=counting", "kept_pinned_links=true")
	time.Sleep(3 * time.Second)

	// A SIGKILL between a flush's drain and its commit loses that drain;
	// flushes run on the minute (FLUSH_INTERVAL=1m), so kill mid-minute.
	if s := time.Now().Second(); s < 8 || s > 52 {
		time.Sleep(time.Duration((68-s)%60) * time.Second)
	}
	before := wantUnit(t, map[string]string{"ActiveState": "active"})
	g.mark = journalLen(t)
	mustRun(t, "systemctl", "kill", "-s", "KILL", "collector")
	restarts, _ := strconv.Atoi(before["NRestarts"])
	waitUnit(t, restartSec+startTimeout, "restarted by Restart=on-failure", func(p map[string]string) bool {
		return p["ActiveState"] == "active" && p["NRestarts"] == strconv.Itoa(restarts+1) && p["MainPID"] != before["MainPID"]
	})
	g.waitJournal(t, "msg=counting", "kept_pinned_links=true")
	time.Sleep(3 * time.Second)

	g.add(stopTraffic())
	mustRun(t, "systemctl", "stop", "collector")
	labtest.AssertSame(t, labtest.Stored(t, dbFile), g.counted)
}

// 5. INTERFACE moves to another link: the restart detaches the old one
// and says so; nothing of ours is left there.
func (g *serviceGuest) otherInterface(t *testing.T) {
	mustRun(t, "ip", "link", "add", otherIf, "type", "veth", "peer", "name", otherPeer)
	mustRun(t, "ip", "link", "set", otherIf, "up")
	mustRun(t, "ip", "link", "set", otherPeer, "up")
	old := g.lab.HostIf
	setEnv(t, "INTERFACE", otherIf)
	g.mark = journalLen(t)
	mustRun(t, "systemctl", "restart", "collector")
	wantUnit(t, map[string]string{"ActiveState": "active"})
	g.waitJournal(t, "detached from an interface no longer in INTERFACE", "interface="+old)
	g.waitJournal(t, "msg=counting", "interface="+otherIf)

	if out := mustRun(t, "ip", "link", "show", "dev", old); strings.Contains(out, "xdp") {
		t.Errorf("XDP is still attached to %s:\n%s", old, out)
	}
	if out := mustRun(t, "ip", "link", "show", "dev", otherIf); !strings.Contains(out, "xdp") {
		t.Errorf("no XDP on %s, the new INTERFACE:\n%s", otherIf, out)
	}
	assertNoTC(t, old)
	ifc, err := net.InterfaceByName(old)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range ourBPF(t) {
		if o.ifindex == ifc.Index {
			t.Errorf("a BPF link of ours is still on %s: %s", old, o)
		}
	}
	if _, err := os.Stat(filepath.Join(pinDir, "links", old)); !os.IsNotExist(err) {
		t.Errorf("the links of %s are still pinned (%v)", old, err)
	}
}

// 6a. Without CAP_BPF and CAP_PERFMON a start can never succeed: exit
// status 3, which the unit does not restart on, and no pins made.
func (g *serviceGuest) noCapability(t *testing.T) {
	mustRun(t, "systemctl", "stop", "collector")
	before := pinTree(t)
	writeDropIn(t, "[Service]\nCapabilityBoundingSet=\nCapabilityBoundingSet=CAP_NET_ADMIN\n")
	g.mark = journalLen(t)
	if out, err := runCmd("systemctl", "start", "collector"); err == nil {
		t.Fatalf("systemctl start succeeded without CAP_BPF:\n%s", out)
	}
	want := map[string]string{"ActiveState": "failed", "Result": "exit-code", "ExecMainStatus": "3", "NRestarts": "0"}
	wantUnit(t, want)
	time.Sleep(restartSec + 2*time.Second)
	wantUnit(t, want)
	if lines := g.journalSince(t); strings.Contains(lines, "Scheduled restart job") {
		t.Errorf("the unit restarted after exit status 3:\n%s", lines)
	}
	g.waitJournal(t, "CAP_BPF")
	if after := pinTree(t); !equalTrees(before, after) {
		t.Errorf("a start that cannot succeed changed the pins:\nbefore %v\nafter  %v", before, after)
	}
	removeDropIn(t)
	mustRun(t, "systemctl", "reset-failed", "collector")
}

// 6b. A missing interface (exit status 1) is retried every RestartSec;
// dpkg -r during that wait stops it for good and removes the pins.
func (g *serviceGuest) removeWhileRestarting(t *testing.T) {
	setEnv(t, "INTERFACE", "nosuch0")
	g.mark = journalLen(t)
	if out, err := runCmd("systemctl", "start", "collector"); err == nil {
		t.Fatalf("systemctl start succeeded with INTERFACE=nosuch0:\n%s", out)
	}
	p := waitUnit(t, restartSec, "activating (auto-restart)", func(p map[string]string) bool {
		return p["ActiveState"] == "activating" && p["SubState"] == "auto-restart"
	})
	if p["ExecMainStatus"] != "1" {
		t.Errorf("INTERFACE=nosuch0 exited with status %s, want 1", p["ExecMainStatus"])
	}
	out := mustRun(t, "dpkg", "-r", "collector")
	t.Logf("dpkg -r said:\n%s", out)
	if !strings.Contains(out, "stopped collector (it was activating)") {
		t.Errorf("dpkg -r did not stop the pending restart:\n%s", out)
	}
	after := unitProps(t)
	if s := after["ActiveState"]; s == "active" || s == "activating" {
		t.Fatalf("after dpkg -r the unit is %s (%s)", s, after["SubState"])
	}
	g.mark = journalLen(t)
	time.Sleep(restartSec + 3*time.Second)
	// Lines of the stop may still come in; a start may not.
	lines := g.journalSince(t)
	for _, start := range []string{"Scheduled restart", "Starting ", "203/EXEC", "collector["} {
		if strings.Contains(lines, start) {
			t.Errorf("the unit started again after dpkg -r (%q):\n%s", start, lines)
		}
	}
	last := unitProps(t)
	if last["LoadState"] != "not-found" && last["NRestarts"] != after["NRestarts"] {
		t.Errorf("restarted after dpkg -r: NRestarts %s -> %s", after["NRestarts"], last["NRestarts"])
	}
	if s := last["ActiveState"]; s == "active" || s == "activating" {
		t.Errorf("%s after dpkg -r and %v", s, restartSec)
	}
	if all := journalText(t); strings.Contains(all, "203/EXEC") {
		t.Errorf("systemd tried to run a removed binary:\n%s", all)
	}
	if _, err := os.Stat(pinDir); !os.IsNotExist(err) {
		t.Errorf("%s is still there after dpkg -r (%v)", pinDir, err)
	}
	if status := dpkgStatus(t); status != "deinstall ok config-files" {
		t.Errorf("after dpkg -r the package is %q", status)
	}
}

// 7. dpkg -P: no file, unit, state, pin, program or qdisc of ours left.
func (g *serviceGuest) purge(t *testing.T) {
	mustRun(t, "dpkg", "-P", "collector")
	for _, p := range []string{"/usr/bin/collector", "/lib/systemd/system/collector.service", enabledLink,
		filepath.Dir(dropIn), pinDir, "/var/lib/collector", envFile} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s is still there after purge (%v)", p, err)
		}
	}
	if p := unitProps(t); p["LoadState"] != "not-found" || p["ActiveState"] == "failed" {
		t.Errorf("after purge: LoadState=%s ActiveState=%s", p["LoadState"], p["ActiveState"])
	}
	if out := mustRun(t, "systemctl", "list-units", "--all", "--failed", "--plain", "--no-legend"); strings.Contains(out, "collector") {
		t.Errorf("collector is listed as failed after purge:\n%s", out)
	}
	if out := mustRun(t, "ip", "link", "show"); strings.Contains(out, "xdp") {
		t.Errorf("XDP still attached after purge:\n%s", out)
	}
	if out := mustRun(t, "tc", "qdisc", "show"); strings.Contains(out, "clsact") {
		t.Errorf("a clsact qdisc is left after purge:\n%s", out)
	}
	for _, dev := range []string{g.lab.HostIf, otherIf} {
		assertNoTC(t, dev)
	}
	// A program is freed a moment after its last link or filter goes.
	var left []bpfObject
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if left = ourBPF(t); len(left) == 0 {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("BPF objects of ours left after purge: %v", left)
	}
	if out, err := runCmd("dpkg-query", "--show", "collector"); err == nil {
		t.Errorf("dpkg still knows collector after purge: %s", out)
	}
}

// add adds a capture's count to the running total.
func (g *serviceGuest) add(counted map[netip.Addr]traffic.Traffic) {
	for client, tr := range counted {
		sum := g.counted[client]
		for class := range tr {
			for dir := range tr[class] {
				sum[class][dir].Add(tr[class][dir])
			}
		}
		g.counted[client] = sum
	}
}

// run runs a command non-interactively and returns its combined output.
func runCmd(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	start := time.Now()
	out, err := runCmd(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	t.Logf("%s %s: %v", name, strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return out
}

var unitPropNames = []string{"LoadState", "ActiveState", "SubState", "UnitFileState", "Result",
	"ExecMainStatus", "NRestarts", "MainPID"}

// unitProps is what systemctl show says of collector.service.
func unitProps(t *testing.T) map[string]string {
	t.Helper()
	out := mustRunQuiet(t, "systemctl", "show", "collector", "-p", strings.Join(unitPropNames, ","))
	p := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			p[k] = v
		}
	}
	return p
}

func mustRunQuiet(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := runCmd(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// wantUnit fails unless the unit's properties are as wanted, and returns
// them.
func wantUnit(t *testing.T, want map[string]string) map[string]string {
	t.Helper()
	p := unitProps(t)
	for k, v := range want {
		if p[k] != v {
			t.Fatalf("collector.service %s=%s, want %s (%v)", k, p[k], v, p)
		}
	}
	return p
}

// waitUnit polls the unit's properties until ok, for up to timeout.
func waitUnit(t *testing.T, timeout time.Duration, what string, ok func(map[string]string) bool) map[string]string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p := unitProps(t)
		if ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("collector.service not %s within %v: %v", what, timeout, p)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// journalText is the unit's journal: the daemon's lines and systemd's
// about it.
func journalText(t *testing.T) string {
	t.Helper()
	return mustRunQuiet(t, "journalctl", "-u", "collector", "--no-pager", "-q", "-o", "short-monotonic")
}

func journalLen(t *testing.T) int {
	t.Helper()
	return strings.Count(journalText(t), "\n")
}

// journalSince is the unit's journal after g.mark lines.
func (g *serviceGuest) journalSince(t *testing.T) string {
	t.Helper()
	lines := strings.SplitAfter(journalText(t), "\n")
	if g.mark >= len(lines) {
		return ""
	}
	return strings.Join(lines[g.mark:], "")
}

// waitJournal waits up to 10 s for a line since g.mark holding every one
// of parts: the daemon's stderr reaches the journal a moment after systemd
// has its READY=1.
func (g *serviceGuest) waitJournal(t *testing.T, parts ...string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		since := g.journalSince(t)
		for _, line := range strings.Split(since, "\n") {
			if containsAll(line, parts) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no journal line with %q since the step began:\n%s", parts, since)
		}
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// setEnv sets key in the env file, in place of the line, set or commented
// out, that the package wrote for it.
func setEnv(t *testing.T, key, value string) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^#?` + key + `=.*$`)
	env := readFile(t, envFile)
	if !re.Match(env) {
		t.Fatalf("%s has no %s line:\n%s", envFile, key, env)
	}
	env = re.ReplaceAll(env, []byte(key+"="+value))
	if err := os.WriteFile(envFile, env, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeDropIn(t *testing.T, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dropIn), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dropIn, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "systemctl", "daemon-reload")
}

func removeDropIn(t *testing.T) {
	t.Helper()
	if err := os.RemoveAll(filepath.Dir(dropIn)); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "systemctl", "daemon-reload")
}

// pinTree maps every path under the pin directory to its inode: a pin
// replaced by a new one has a new inode.
func pinTree(t *testing.T) map[string]uint64 {
	t.Helper()
	tree := map[string]uint64{}
	err := filepath.Walk(pinDir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		tree[path] = info.Sys().(*syscall.Stat_t).Ino
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func equalTrees(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func dpkgStatus(t *testing.T) string {
	t.Helper()
	out, err := runCmd("dpkg-query", "--show", "--showformat=${Status}", "collector")
	if err != nil {
		t.Fatalf("dpkg-query: %v\n%s", err, out)
	}
	return strings.TrimSpace(out)
}

// assertNoTC checks dev has no clsact qdisc and no filter of ours.
func assertNoTC(t *testing.T, dev string) {
	t.Helper()
	if out := mustRun(t, "tc", "qdisc", "show", "dev", dev); strings.Contains(out, "clsact") {
		t.Errorf("a clsact qdisc is still on %s:\n%s", dev, out)
	}
	for _, hook := range []string{"ingress", "egress"} {
		// Without a clsact qdisc tc may refuse to list: then there is
		// no filter either.
		if out, _ := runCmd("tc", "filter", "show", "dev", dev, hook); strings.Contains(out, "_count") {
			t.Errorf("a filter of ours is still on %s %s:\n%s", dev, hook, out)
		}
	}
}

// bpfObject is a BPF program of ours loaded in the kernel, or a link
// that runs one.
type bpfObject struct {
	kind    string // "program" or the link type
	name    string
	ifindex int // of a link, where the kernel says
}

func (o bpfObject) String() string {
	return fmt.Sprintf("%s %s ifindex %d", o.kind, o.name, o.ifindex)
}

// ourProgram tells our programs by name, which the kernel cuts to 15
// bytes: xdp_count, xdp_count_frags, tc_count, tc_ingress_coun(t).
func ourProgram(name string) bool {
	return strings.HasPrefix(name, "xdp_count") || strings.HasPrefix(name, "tc_count") || strings.HasPrefix(name, "tc_ingress_coun")
}

// ourBPF lists the programs of ours still loaded and the links running
// them, without bpftool.
func ourBPF(t *testing.T) []bpfObject {
	t.Helper()
	var objs []bpfObject
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			break // ENOENT: no more
		}
		id = next
		prog, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // freed meanwhile
		}
		if info, err := prog.Info(); err == nil && ourProgram(info.Name) {
			objs = append(objs, bpfObject{kind: "program", name: info.Name, ifindex: -1})
		}
		prog.Close()
	}
	it := new(link.Iterator)
	for it.Next() {
		l := it.Take()
		info, err := l.Info()
		l.Close()
		if err != nil {
			continue
		}
		prog, err := ebpf.NewProgramFromID(info.Program)
		if err != nil {
			continue
		}
		pi, err := prog.Info()
		prog.Close()
		if err != nil || !ourProgram(pi.Name) {
			continue
		}
		o := bpfObject{kind: fmt.Sprint(info.Type), name: pi.Name, ifindex: -1}
		if x := info.XDP(); x != nil {
			o.ifindex = int(x.Ifindex)
		} else if x := info.TCX(); x != nil {
			o.ifindex = int(x.Ifindex)
		}
		objs = append(objs, o)
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return objs
}
