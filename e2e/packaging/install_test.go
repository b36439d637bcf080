package packaging

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/back2basic/collector/config"
	"github.com/back2basic/collector/internal/testkit/selfexec"
)

// repo is the repository's root as seen from this package's directory,
// where go test runs its tests: the scripts, the unit and the Makefile
// these tests try are there.
const repo = "../.."

// release makes what install.sh expects beside it, as a release directory
// would hold it: the scripts, lib.sh, the unit and the test binary.
func release(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	copyFile(t, selfexec.Collector(), filepath.Join(dir, "collector"), 0o755)
	for _, f := range []struct {
		path string // in the repository, and in the release
		mode fs.FileMode
	}{
		{"collector.service", 0o644},
		{"install.sh", 0o755},
		{"uninstall.sh", 0o755},
		{"packaging/lib.sh", 0o644},
	} {
		copyFile(t, filepath.Join(repo, f.path), filepath.Join(dir, f.path), f.mode)
	}
	return dir
}

func copyFile(t *testing.T, src, dst string, mode fs.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

// script runs a script of dir with args and returns its combined output;
// a non-zero exit fails the test unless the caller expects it (wantErr).
func script(t *testing.T, dir, name string, wantErr bool, args ...string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(dir, name), args...).CombinedOutput()
	if (err != nil) != wantErr {
		t.Fatalf("%s %s: err = %v, want error %v\n%s", name, strings.Join(args, " "), err, wantErr, out)
	}
	return string(out)
}

// tree describes every file, directory and symlink under root with its
// mode and content, to tell whether a run changed anything.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == root {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		desc := info.Mode().String()
		switch {
		case info.Mode().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(sum[:])
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			desc += " -> " + target
		}
		files[strings.TrimPrefix(path, root)] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// regularFiles lists the regular files in a tree, sorted.
func regularFiles(files map[string]string) []string {
	var out []string
	for path, desc := range files {
		if strings.HasPrefix(desc, "-") {
			out = append(out, path)
		}
	}
	slices.Sort(out)
	return out
}

func assertFile(t *testing.T, path string, mode fs.FileMode, content []byte) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode() != mode {
		t.Errorf("%s has mode %v, want %v", path, info.Mode(), mode)
	}
	if content == nil {
		return
	}
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, content) {
		t.Errorf("%s does not hold what was installed (err %v)", path, err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInstallStaged(t *testing.T) {
	rel, root := release(t), t.TempDir()
	out := script(t, rel, "install.sh", false, "--root", root)
	for _, want := range []string{"installed /usr/local/bin/collector", "installed /etc/systemd/system/collector.service", "wrote /etc/collector.env", "staged collector dev under " + root} {
		if !strings.Contains(out, want) {
			t.Errorf("install.sh output lacks %q:\n%s", want, out)
		}
	}
	assertFile(t, filepath.Join(root, "usr/local/bin/collector"), 0o755, readFile(t, selfexec.Collector()))
	assertFile(t, filepath.Join(root, "etc/systemd/system/collector.service"), 0o644, readFile(t, filepath.Join(repo, "collector.service")))
	env := filepath.Join(root, "etc/collector.env")
	assertFile(t, env, 0o600, nil)

	iface, err := config.DefaultRouteInterface("/proc/net")
	wantLine := "INTERFACE=" + iface
	if err != nil {
		wantLine = "#INTERFACE="
	}
	if lines := strings.Split(string(readFile(t, env)), "\n"); !slices.Contains(lines, wantLine) || !slices.Contains(lines, "PINNED_MAPS=1") {
		t.Errorf("the new env file lacks %q or PINNED_MAPS=1:\n%s", wantLine, readFile(t, env))
	}

	t.Run("second run", func(t *testing.T) {
		before := tree(t, root)
		out := script(t, rel, "install.sh", false, "--root", root)
		if !strings.Contains(out, "nothing to do") || strings.Contains(out, "installed") {
			t.Errorf("a second install.sh said:\n%s\nwant only that there is nothing to do", out)
		}
		if after := tree(t, root); !reflect.DeepEqual(before, after) {
			t.Errorf("a second install.sh changed the tree:\nbefore %v\nafter  %v", before, after)
		}
	})

	t.Run("new binary", func(t *testing.T) {
		// Appended bytes make another file that still runs.
		newer := append(readFile(t, selfexec.Collector()), 0)
		if err := os.WriteFile(filepath.Join(rel, "collector"), newer, 0o755); err != nil {
			t.Fatal(err)
		}
		envBefore := readFile(t, env)
		out := script(t, rel, "install.sh", false, "--root", root)
		if !strings.Contains(out, "installed /usr/local/bin/collector") || strings.Contains(out, "collector.service") || strings.Contains(out, "collector.env") {
			t.Errorf("install.sh with only a new binary said:\n%s\nwant only the binary installed", out)
		}
		assertFile(t, filepath.Join(root, "usr/local/bin/collector"), 0o755, newer)
		if !bytes.Equal(readFile(t, env), envBefore) {
			t.Error("installing a new binary changed the env file")
		}
	})

	t.Run("mode only", func(t *testing.T) {
		unit := filepath.Join(root, "etc/systemd/system/collector.service")
		if err := os.Chmod(unit, 0o600); err != nil {
			t.Fatal(err)
		}
		out := script(t, rel, "install.sh", false, "--root", root)
		if !strings.Contains(out, "installed /etc/systemd/system/collector.service") {
			t.Errorf("install.sh did not repair a unit with the wrong mode:\n%s", out)
		}
		assertFile(t, unit, 0o644, readFile(t, filepath.Join(repo, "collector.service")))
	})
}

// TestInstallKeepsEnvFile: an existing env file keeps every byte; the
// settings it does not mention are appended as comments, once.
func TestInstallKeepsEnvFile(t *testing.T) {
	rel, root := release(t), t.TempDir()
	env := filepath.Join(root, "etc/collector.env")
	mine := "# my settings\nINTERFACE=bond0\nSQLITE_PATH=/srv/collector.db\n  # LOG_LEVEL=debug\n"
	if err := os.MkdirAll(filepath.Dir(env), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(env, []byte(mine), 0o600); err != nil {
		t.Fatal(err)
	}

	out := script(t, rel, "install.sh", false, "--root", root)
	if !strings.Contains(out, "kept /etc/collector.env") {
		t.Errorf("install.sh did not say it kept the env file:\n%s", out)
	}
	got := string(readFile(t, env))
	if !strings.HasPrefix(got, mine) {
		t.Fatalf("the env file was rewritten, not appended to:\n%s", got)
	}
	assertFile(t, env, 0o600, nil)
	added := strings.TrimPrefix(got, mine)
	for name, def := range settingDefaults(t) {
		n := strings.Count(added, "\n#"+name+"=")
		switch name {
		case "INTERFACE", "SQLITE_PATH", "LOG_LEVEL":
			if n != 0 {
				t.Errorf("%s, which the file mentions, was added again", name)
			}
		default:
			if n != 1 || !strings.Contains(added, "\n#"+name+"="+def+"\n") {
				t.Errorf("%s was added %d times, want once as #%s=%s", name, n, name, def)
			}
		}
	}

	before := tree(t, root)
	if out := script(t, rel, "install.sh", false, "--root", root); !strings.Contains(out, "nothing to do") {
		t.Errorf("a second install.sh said:\n%s\nwant nothing to do", out)
	}
	if !reflect.DeepEqual(before, tree(t, root)) {
		t.Errorf("a second install.sh changed the tree; env file now:\n%s", readFile(t, env))
	}
}

var helpDefault = regexp.MustCompile(`\(env ([A-Z][A-Z0-9_]*), default "(.*)"\)`)

// settingDefaults reads every setting and its default from the binary's
// help, the same source packaging/lib.sh reads.
func settingDefaults(t *testing.T) map[string]string {
	t.Helper()
	var help bytes.Buffer
	if _, err := config.Load("collector", []string{"-h"}, func(string) (string, bool) { return "", false }, &help); err == nil {
		t.Fatal("-h did not stop config.Load")
	}
	defaults := map[string]string{}
	for _, m := range helpDefault.FindAllStringSubmatch(help.String(), -1) {
		defaults[m[1]] = m[2]
	}
	for _, name := range []string{"INTERFACE", "SQLITE_PATH", "PINNED_MAPS", "PIN_PATH", "LOG_LEVEL"} {
		if _, ok := defaults[name]; !ok {
			t.Fatalf("the help text no longer shows %s as (env NAME, default \"...\"), which packaging/lib.sh reads:\n%s", name, help.String())
		}
	}
	return defaults
}

// TestEnvFileDefaults: the env file install.sh writes sets what it means to
// and its commented lines hold the real defaults, so uncommenting them all
// changes nothing.
func TestEnvFileDefaults(t *testing.T) {
	rel, root := release(t), t.TempDir()
	script(t, rel, "install.sh", false, "--root", root)
	env := filepath.Join(root, "etc/collector.env")
	noEnv := func(string) (string, bool) { return "", false }
	load := func(path string) *config.Config {
		t.Helper()
		c, err := config.Load("collector", []string{"-config", path}, noEnv, io.Discard)
		if err != nil {
			t.Fatalf("the env file does not load: %v\n%s", err, readFile(t, path))
		}
		return c
	}

	defaults := load(os.DevNull)
	installed := load(env)
	if !installed.Pinned {
		t.Error("a new env file does not pin (PINNED_MAPS=1)")
	}
	defaults.Interfaces, defaults.Pinned = installed.Interfaces, installed.Pinned
	if !reflect.DeepEqual(installed, defaults) {
		t.Errorf("the env file sets more than INTERFACE and PINNED_MAPS:\ngot  %+v\nwant %+v", installed, defaults)
	}

	var uncommented []string
	settings := 0
	for _, line := range strings.Split(string(readFile(t, env)), "\n") {
		if l, ok := strings.CutPrefix(line, "#"); ok && strings.Contains(l, "=") && !strings.Contains(l, " ") {
			line, settings = l, settings+1
		}
		uncommented = append(uncommented, line)
	}
	if want := len(settingDefaults(t)) - 2; settings < want {
		t.Errorf("the env file has %d commented settings, want every setting but INTERFACE and PINNED_MAPS (%d)", settings, want)
	}
	all := filepath.Join(t.TempDir(), "all.env")
	if err := os.WriteFile(all, []byte(strings.Join(uncommented, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := load(all); !reflect.DeepEqual(got, defaults) {
		t.Errorf("uncommenting the defaults changes the settings:\ngot  %+v\nwant %+v", got, defaults)
	}
}

func TestUninstallStaged(t *testing.T) {
	rel, root := release(t), t.TempDir()
	script(t, rel, "install.sh", false, "--root", root)
	db := filepath.Join(root, "var/lib/collector/collector.db")
	if err := os.MkdirAll(filepath.Dir(db), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, []byte("rows"), 0o600); err != nil {
		t.Fatal(err)
	}

	out := script(t, rel, "uninstall.sh", false, "--root", root)
	for _, want := range []string{"removed /usr/local/bin/collector", "removed /etc/systemd/system/collector.service", "kept /var/lib/collector and /etc/collector.env"} {
		if !strings.Contains(out, want) {
			t.Errorf("uninstall.sh output lacks %q:\n%s", want, out)
		}
	}
	files := regularFiles(tree(t, root))
	if want := []string{"/etc/collector.env", "/var/lib/collector/collector.db"}; !slices.Equal(files, want) {
		t.Errorf("after uninstall.sh the tree holds %v, want %v", files, want)
	}
	if out := script(t, rel, "uninstall.sh", false, "--root", root); !strings.Contains(out, "nothing to do") {
		t.Errorf("a second uninstall.sh said:\n%s\nwant nothing to do", out)
	}

	out = script(t, rel, "uninstall.sh", false, "--purge", "--root", root)
	for _, want := range []string{"removed /etc/collector.env", "removed /var/lib/collector"} {
		if !strings.Contains(out, want) {
			t.Errorf("uninstall.sh --purge output lacks %q:\n%s", want, out)
		}
	}
	if files := regularFiles(tree(t, root)); len(files) > 0 {
		t.Errorf("uninstall.sh --purge left %v", files)
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/collector")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("uninstall.sh --purge left /var/lib/collector: %v", err)
	}
	if out := script(t, rel, "uninstall.sh", false, "--purge", "--root", root); !strings.Contains(out, "nothing to do") {
		t.Errorf("a second uninstall.sh --purge said:\n%s\nwant nothing to do", out)
	}
}

func TestScriptArguments(t *testing.T) {
	rel := release(t)
	for _, args := range [][]string{
		{"install.sh", "--bogus"},
		{"install.sh", "--root"},
		{"install.sh", "--purge"},
		{"uninstall.sh", "--bogus"},
		{"uninstall.sh", "--purge", "--root"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out, err := exec.Command(filepath.Join(rel, args[0]), args[1:]...).CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "usage: "+args[0]) {
				t.Errorf("got %v and %q, want exit status 2 and the usage", err, out)
			}
		})
	}
}

// TestShellcheck checks every script of the tree (CI's, the VM tests',
// the dashboard's update) and the scripts as they ship, the maintainer
// scripts taken from a package built the way `make deb` builds it.
func TestShellcheck(t *testing.T) {
	shellcheck, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("shellcheck is not installed (make deps installs it)")
	}
	deb := buildDeb(t, fakeCollector(t), "v1.0.0", t.TempDir())
	control := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-e", deb, control).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -e: %v\n%s", err, out)
	}
	files := []string{"install.sh", "uninstall.sh", "packaging/build-deb.sh", "packaging/lib.sh",
		".ci/run", "web/dashboard/update-uplot.sh"}
	vmtest, err := fs.Glob(os.DirFS(repo), "vmtest/*.sh")
	if err != nil || len(vmtest) == 0 {
		t.Fatalf("no vmtest scripts: %v", err)
	}
	files = append(files, vmtest...)
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		files = append(files, filepath.Join("packaging/deb", s), filepath.Join(control, s))
	}
	// -x follows the scripts' `. packaging/lib.sh` and the like.
	cmd := exec.Command(shellcheck, append([]string{"-x"}, files...)...)
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

// fakeCollector is a stand-in binary for tests that build packages only
// to look at their name and scripts: it answers -h with one setting, as
// build-deb.sh needs, and compresses in no time.
func fakeCollector(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "collector")
	fake := "#!/bin/sh\necho '  -log-level string (env LOG_LEVEL, default \"info\")' >&2\nexit 2\n"
	if err := os.WriteFile(bin, []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// buildDeb runs packaging/build-deb.sh and returns the package's path.
func buildDeb(t *testing.T, bin, version, dir string) string {
	t.Helper()
	cmd := exec.Command("packaging/build-deb.sh", bin, version, dir)
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("build-deb.sh: %v\n%s", err, stderrOf(err))
	}
	return strings.TrimSpace(string(out))
}

func stderrOf(err error) []byte {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.Stderr
	}
	return nil
}

func TestDebVersions(t *testing.T) {
	for _, tt := range []struct{ describe, want string }{
		{"v1.2.0", `1\.2\.0`},
		{"v1.2.0-3-gabc1234", `1\.2\.0\+3\.gabc1234`},
		{"v1.2.0-3-gabc1234-dirty", `1\.2\.0\+3\.gabc1234\.dirty`},
		// Untagged: the commit count keeps later builds sorting higher.
		{"abc1234-dirty", `0\.0\.0\+git[0-9]+\.abc1234\.dirty`},
		{"dev", `0\.0\.0\+git[0-9]+\.dev`},
	} {
		t.Run(tt.describe, func(t *testing.T) {
			deb := filepath.Base(buildDeb(t, fakeCollector(t), tt.describe, t.TempDir()))
			want := regexp.MustCompile(`^collector_` + tt.want + `_[a-z0-9]+\.deb$`)
			if !want.MatchString(deb) {
				t.Errorf("package %s, want version %s", deb, tt.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	sum := sha256.Sum256(readFile(t, filepath.Join(repo, "bpf/collector_bpfel.o")))
	object := hex.EncodeToString(sum[:])

	t.Run("go build", func(t *testing.T) {
		out, err := exec.Command(selfexec.Collector(), "version").Output()
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("collector dev\ncommit unknown\nbpf object sha256 %s\n", object)
		if string(out) != want {
			t.Errorf("collector version printed\n%s\nwant\n%s", out, want)
		}
	})

	t.Run("make build", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "collector")
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if out, err := exec.Command("make", "-C", repo, "--no-print-directory", "build", "BINARY="+bin, "GO="+gobin).CombinedOutput(); err != nil {
			t.Fatalf("make build: %v\n%s", err, out)
		}
		out, err := exec.Command(bin, "version").Output()
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("collector %s\ncommit %s\nbpf object sha256 %s\n", gitOutput(t, "describe", "--always", "--dirty"), gitOutput(t, "rev-parse", "HEAD"), object)
		if string(out) != want {
			t.Errorf("collector version printed\n%s\nwant what git says:\n%s", out, want)
		}
	})
}

func gitOutput(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		t.Skipf("git %s: %v; not a checkout", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}
