package kernel

import (
	"os"
	"path/filepath"
	"testing"
)

func TestAtLeast(t *testing.T) {
	for _, tt := range []struct {
		release      string
		major, minor int
		want         bool
	}{
		{"6.1.0-18-amd64", 6, 1, true},
		{"6.1.0-18-amd64", 6, 6, false},
		{"5.10.0-46-cloud-amd64", 5, 11, false},
		{"5.15.0-91-generic", 5, 11, true},
		{"6.12.117+deb12-cloud-amd64", 6, 6, true},
		{"7.2.13+deb14-cloud-amd64", 6, 18, true},
		{"6.18", 6, 18, true},
	} {
		got, err := AtLeast(tt.release, tt.major, tt.minor)
		if err != nil || got != tt.want {
			t.Errorf("AtLeast(%q, %d, %d) = %v, %v; want %v", tt.release, tt.major, tt.minor, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "six", "6", "6-rc1"} {
		if _, err := AtLeast(bad, 5, 10); err == nil {
			t.Errorf("AtLeast(%q) took a release that has no major.minor", bad)
		}
	}
}

func TestRelease(t *testing.T) {
	release, err := Release()
	if err != nil {
		t.Fatal(err)
	}
	proc, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Skip(err)
	}
	if want := string(proc[:len(proc)-1]); release != want {
		t.Errorf("Release() = %q, /proc says %q", release, want)
	}
}

func TestHasAttachType(t *testing.T) {
	if _, err := os.Stat(VmlinuxBTF); err != nil {
		t.Skipf("this kernel has no BTF: %v", err)
	}
	// BPF_CGROUP_INET_INGRESS is the enum's first value, in every kernel.
	if has, err := HasAttachType(VmlinuxBTF, "BPF_CGROUP_INET_INGRESS"); err != nil || !has {
		t.Errorf("BPF_CGROUP_INET_INGRESS: %v, %v", has, err)
	}
	if has, err := HasAttachType(VmlinuxBTF, "BPF_NO_SUCH_ATTACH"); err != nil || has {
		t.Errorf("BPF_NO_SUCH_ATTACH: %v, %v", has, err)
	}

	notBTF := filepath.Join(t.TempDir(), "vmlinux")
	if err := os.WriteFile(notBTF, []byte("not btf"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{notBTF, filepath.Join(t.TempDir(), "missing")} {
		if _, err := HasAttachType(path, "BPF_XDP"); err == nil {
			t.Errorf("%s: no error", path)
		}
	}
}
