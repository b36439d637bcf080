package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/kerneltest"
)

// enabledLink is what `systemctl enable collector` creates.
const enabledLink = "/etc/systemd/system/multi-user.target.wants/collector.service"

// TestDebPackage builds the package as `make deb` does, installs it on
// this machine with dpkg, installs it again as an upgrade would, removes
// and purges it, and checks what each step leaves behind.
func TestDebPackage(t *testing.T) {
	kerneltest.RequireRoot(t)
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		t.Skip("systemd runs here, so the package would start collector on this machine's real interfaces; run this test where systemd is not PID 1")
	}
	t.Log("systemd is not PID 1 here: the maintainer scripts enable the unit but skip daemon-reload, collector check, start and stop, and say so")
	for _, p := range []string{"/usr/bin/collector", "/lib/systemd/system/collector.service", "/etc/collector.env", "/var/lib/collector", enabledLink} {
		if _, err := os.Lstat(p); err == nil {
			t.Skipf("%s exists: collector is installed here, and this test would replace it", p)
		}
	}

	dist := t.TempDir()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if out, err := exec.Command("make", "-C", repo, "--no-print-directory", "deb", "DIST="+dist, "GO="+gobin).CombinedOutput(); err != nil {
		t.Fatalf("make deb: %v\n%s", err, out)
	}
	debs, err := filepath.Glob(filepath.Join(dist, "collector_*.deb"))
	if err != nil || len(debs) != 1 {
		t.Fatalf("make deb left %v in %s, want one package", debs, dist)
	}
	deb := debs[0]
	if info, err := os.Stat(deb); err == nil {
		t.Logf("%s: %.1f MB", filepath.Base(deb), float64(info.Size())/1e6)
	}

	t.Cleanup(func() {
		// Whatever step failed, leave the machine as it was.
		exec.Command("dpkg", "--purge", "collector").Run()
		os.RemoveAll("/var/lib/collector")
		os.Remove(enabledLink)
	})
	dpkg := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("dpkg", append([]string{"--force-confdef", "--force-confold"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("dpkg %s: %v", args[0], time.Since(start).Round(time.Millisecond))
		return string(out)
	}

	out := dpkg("--install", deb)
	if !strings.Contains(out, "systemd is not running here") {
		t.Errorf("postinst did not say it skipped starting:\n%s", out)
	}
	assertFile(t, "/usr/bin/collector", 0o755, nil)
	assertFile(t, "/lib/systemd/system/collector.service", 0o644, readFile(t, filepath.Join(repo, "collector.service")))
	assertFile(t, "/etc/collector.env", 0o600, nil)
	if env := string(readFile(t, "/etc/collector.env")); !strings.Contains(env, "\n#INTERFACE=\n") || !strings.Contains(env, "\nPINNED_MAPS=1\n") {
		t.Errorf("the package's env file should leave INTERFACE to the default route and pin:\n%s", env)
	}
	if target, err := os.Readlink(enabledLink); err != nil || target != "/lib/systemd/system/collector.service" {
		t.Errorf("collector is not enabled: %s -> %q (%v)", enabledLink, target, err)
	}
	if conffiles := dpkgQuery(t, "${Conffiles}"); !strings.Contains(conffiles, "/etc/collector.env") {
		t.Errorf("/etc/collector.env is not a conffile: %q", conffiles)
	}
	version, err := exec.Command("/usr/bin/collector", "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "collector " + gitOutput(t, "describe", "--always", "--dirty") + "\ncommit " + gitOutput(t, "rev-parse", "HEAD") + "\n"; !strings.HasPrefix(string(version), want) {
		t.Errorf("the packaged collector version says\n%s\nwant the stamp of make deb:\n%s", version, want)
	}

	// The host's own setting and data, which an upgrade and a removal keep.
	env, err := os.OpenFile("/etc/collector.env", os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = env.WriteString("LOG_LEVEL=debug\n")
	env.Close()
	if err != nil {
		t.Fatal(err)
	}
	mine := readFile(t, "/etc/collector.env")
	if err := os.MkdirAll("/var/lib/collector", 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/var/lib/collector/collector.db", []byte("rows"), 0o600); err != nil {
		t.Fatal(err)
	}

	dpkg("--install", deb)
	if got := readFile(t, "/etc/collector.env"); string(got) != string(mine) {
		t.Errorf("an upgrade changed the host's env file:\n%s", got)
	}

	dpkg("--remove", "collector")
	for _, p := range []string{"/usr/bin/collector", "/lib/systemd/system/collector.service", enabledLink} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("dpkg --remove left %s", p)
		}
	}
	if got, err := os.ReadFile("/etc/collector.env"); err != nil || string(got) != string(mine) {
		t.Errorf("dpkg --remove did not keep the env file as it was (%v):\n%s", err, got)
	}
	if _, err := os.Stat("/var/lib/collector/collector.db"); err != nil {
		t.Errorf("dpkg --remove did not keep the data: %v", err)
	}
	if status := dpkgQuery(t, "${Status}"); status != "deinstall ok config-files" {
		t.Errorf("after dpkg --remove the package is %q, want its config files kept", status)
	}

	dpkg("--purge", "collector")
	for _, p := range []string{"/etc/collector.env", "/var/lib/collector"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("dpkg --purge left %s", p)
		}
	}
	if out, err := exec.Command("dpkg-query", "--show", "collector").CombinedOutput(); err == nil {
		t.Errorf("dpkg still knows collector after --purge: %s", out)
	}
}

func dpkgQuery(t *testing.T, format string) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "--show", "--showformat="+format, "collector").Output()
	if err != nil {
		t.Fatalf("dpkg-query: %v", err)
	}
	return strings.TrimSpace(string(out))
}
