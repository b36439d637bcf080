package check

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/back2basic/collector/bpf"
	"github.com/back2basic/collector/bpfgo"
	"github.com/back2basic/collector/config"
	"github.com/back2basic/collector/internal/testkit/kerneltest"
	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/traffic"
)

func TestLoadPrograms(t *testing.T) {
	kerneltest.RequireRoot(t)
	r := (&Checker{}).programs(&config.Config{Ports: traffic.DefaultPorts})
	if r.status != ok {
		t.Fatalf("the embedded programs must load here: %v %s", r.status, r.detail)
	}
}

// attachXDP attaches an XDP program that passes every frame, named name,
// to iface in generic mode, in the calling thread's namespace.
func attachXDP(t *testing.T, name, iface string) (link.Link, error) {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         name,
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}, // XDP_PASS
	})
	if err != nil {
		return nil, err
	}
	// The link holds its own reference to the program.
	defer prog.Close()
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	return link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index, Flags: link.XDPGenericMode})
}

func TestInterfaceInNamespace(t *testing.T) {
	l := labtest.New(t)
	tests := []struct {
		name       string
		prog       string // XDP program attached first; "" for none
		want       status
		wantDetail string
	}{
		{"nothing attached", "", ok, "no XDP program attached"},
		{"ours", bpf.CollectorProgXdpCount, ok, "ours (xdp_count, id "},
		{"another tool's", "xdp_firewall", fail, "another XDP program (xdp_firewall, id "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var results []result
			err := l.Do(l.HostNS, func() error {
				if tt.prog != "" {
					lk, err := attachXDP(t, tt.prog, l.HostIf)
					if err != nil {
						return err
					}
					defer lk.Close()
				}
				results = (&Checker{}).iface(l.HostIf, bpfgo.XDPAuto)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(results) != 3 {
				t.Fatalf("want the link, xdp and xdp mode lines, got %+v", results)
			}
			if r := results[0]; r.status != ok || !strings.HasPrefix(r.detail, "up, MTU 1500, driver") {
				t.Errorf("link: %v %q", r.status, r.detail)
			}
			if r := results[1]; r.status != tt.want || !strings.Contains(r.detail, tt.wantDetail) {
				t.Errorf("xdp: got %v %q, want %v containing %q", r.status, r.detail, tt.want, tt.wantDetail)
			}
			// veth has native XDP; kernels from 6.3 report it.
			want := "native (XDP_MODE=auto; the driver has native XDP)"
			if !kerneltest.AtLeast(6, 3) {
				want = "native if the driver supports it, else none: a TC ingress program counts (XDP_MODE=auto; the kernel does not report XDP features (6.3+))"
			}
			if r := results[2]; r.detail != want {
				t.Errorf("xdp mode: %v %q, want %q", r.status, r.detail, want)
			}
		})
	}
}

// TestReadyInNamespace runs the whole check on this machine against a lab
// interface: as root on a supported kernel it finds no problem.
func TestReadyInNamespace(t *testing.T) {
	l := labtest.New(t)
	dir := t.TempDir()
	cfg := &config.Config{
		Interfaces: []string{l.HostIf},
		SQLitePath: filepath.Join(dir, "collector.db"),
		PinPath:    filepath.Join(dir, "pins"),
		Ports:      traffic.DefaultPorts,
		XDPMode:    bpfgo.XDPAuto,
		TCMode:     bpfgo.TCAuto,
	}
	var out bytes.Buffer
	err := l.Do(l.HostNS, func() error { return (&Checker{}).Run(context.Background(), cfg, &out) })
	t.Logf("collector check:\n%s", &out)
	if err != nil {
		t.Fatal(err)
	}
}
