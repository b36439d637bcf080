package bpfgo

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/back2basic/collector/internal/testkit/goal"
	"github.com/back2basic/collector/traffic"
)

// BenchmarkPacketCost measures the XDP program (ingress) and the TC program
// (egress, tc-*) per packet with PROG_TEST_RUN and, in the same run, an
// empty program of the same type on the same frame; added-ns is the
// difference, x-empty the ratio of the two.
//
// Before is the same object loaded without the cache of the last client
// (Config.uncached): the verifier drops the cache's code, and every packet
// is added to the counter map as before the cache. Measuring that object
// rather than a copy of an older one keeps the difference to the cache
// alone, on the same machine in the same run.
func BenchmarkPacketCost(b *testing.B) {
	cfg := Config{Ports: traffic.DefaultPorts, MaxClients: 1 << 20}
	c := loadCounters(b, cfg)
	cfg.uncached = true
	uncached := loadCounters(b, cfg)
	empty := emptyXDP(b)
	emptyTC := emptyProgram(b, ebpf.SchedCLS, tcActUnspec)
	// A counter map with room for one client, taken: the next client
	// that proves itself is counted in the proven map.
	full := loadCounters(b, Config{Ports: traffic.DefaultPorts, MaxClients: 1})
	runXDP(b, full.xdp, frame{src: client6, dst: host6, proto: tcp, sport: 40000, dport: 9984}.build())

	// The figures with a goal, printed once every sub-benchmark ran, from
	// its last run: a sub-benchmark runs more than once, and what it
	// prints is interleaved with its own result line.
	var figures []string
	goals := map[string]func(){}
	defer func() {
		for _, f := range figures {
			goals[f]()
		}
	}()

	xdp := func(c *Counters) *ebpf.Program { return c.xdp }
	tc := func(c *Counters) *ebpf.Program { return c.tc }
	answer4 := frame{src: host4, dst: client4, proto: tcp, sport: 9984, dport: 40000, tcpFlags: tcpACK, payload: 1400}
	pureACK4 := answer4
	pureACK4.payload = 0
	answer6 := frame{src: host6, dst: client6, proto: udp, sport: 9984, dport: 40000, first: 0x41, payload: 1400}
	for _, bc := range []struct {
		name  string
		prog  func(*Counters) *ebpf.Program
		c     *Counters
		empty *ebpf.Program
		frame []byte
		// figure and most, when set, print the cost beside its goal in
		// ns added, with the cost without the cache before it.
		figure string
		most   float64
	}{
		{"non-sia-ipv4", xdp, c, empty, frame{src: client4, dst: host4, proto: tcp, sport: 40000, dport: 443, payload: 1400}.build(), "", 0},
		{"sia-ipv4-existing-client", xdp, c, empty, frame{src: client4, dst: host4, proto: tcp, sport: 40000, dport: 9984, payload: 1400}.build(), "Sia IPv4 packet, known client", 5},
		{"sia-ipv6-existing-client", xdp, c, empty, frame{src: client6, dst: host6, proto: udp, sport: 40000, dport: 9984, payload: 1400}.build(), "Sia IPv6 packet, known client", 6},
		{"tc-non-sia-ipv4", tc, c, emptyTC, frame{src: host4, dst: client4, proto: tcp, sport: 443, dport: 40000, tcpFlags: tcpACK, payload: 1400}.build(), "", 0},
		// The proof path: the host's data to a client; after the first
		// run the client is proven and its mark is only read.
		{"tc-sia-ipv4-proven-client", tc, c, emptyTC, answer4.build(), "TC egress, Sia packet", 5},
		{"tc-sia-ipv6-quic-proven-client", tc, c, emptyTC, answer6.build(), "", 0},
		// A pure ACK to a client never proven (another one than above):
		// the proof is checked, and fails, on every packet.
		{"tc-sia-ipv4-unproven-client", tc, c, emptyTC, func() []byte { f := pureACK4; f.dst = netip.MustParseAddr("198.51.100.8"); return f.build() }(), "", 0},
		// A client counted in the proven map: the counter map misses,
		// the proven map has it.
		{"tc-sia-ipv4-proven-map-client", tc, full, emptyTC, answer4.build(), "", 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			progs := []*ebpf.Program{bc.empty, bc.prog(bc.c)}
			if bc.figure != "" {
				progs = append(progs, bc.prog(uncached))
			}
			// Alternate the programs and keep each one's fastest
			// round: what other work on the machine adds is noise, and
			// it only ever adds.
			const rounds = 5
			fastest := make([]time.Duration, len(progs))
			for i := range fastest {
				fastest[i] = 1 << 62
			}
			for range rounds {
				for i, p := range progs {
					fastest[i] = min(fastest[i], perRun(b, p, bc.frame, max(b.N/rounds, 1)))
				}
			}
			report(b, fastest[1], fastest[0])
			if bc.figure != "" {
				before, now := fastest[2]-fastest[0], fastest[1]-fastest[0]
				b.ReportMetric(float64(before.Nanoseconds()), "uncached-added-ns/pkt")
				if goals[bc.figure] == nil {
					figures = append(figures, bc.figure)
				}
				goals[bc.figure] = func() {
					goal.Report(b, bc.figure, float64(before.Nanoseconds()), float64(now.Nanoseconds()), "ns", bc.most)
				}
			}
		})
	}

	// Rotating clients, each already in the map: every packet comes from
	// another client than the one before, so every packet misses the
	// cache. A rotator program changes the frame's client address and
	// tail-calls the program measured; PROG_TEST_RUN repeats it on the
	// same frame, so the next run counts the next client. The empty
	// program behind the same rotator is the baseline.
	for _, clients := range []int{1_000, 50_000} {
		for _, dir := range []struct {
			name  string
			typ   ebpf.ProgramType
			prog  func(*Counters) *ebpf.Program
			empty *ebpf.Program
			ret   uint32
			frame frame
			// addrOff is where the low half of the client's IPv4
			// address is in the frame.
			addrOff int16
		}{
			{"xdp", ebpf.XDP, xdp, empty, xdpPass, frame{src: netip.AddrFrom4([4]byte{10, 1, 0, 0}), dst: host4, proto: tcp, sport: 40000, dport: 9984, payload: 1400}, 14 + 12 + 2},
			{"tc", ebpf.SchedCLS, tc, emptyTC, tcActUnspec, func() frame { f := answer4; f.dst = netip.AddrFrom4([4]byte{10, 1, 0, 0}); return f }(), 14 + 16 + 2},
		} {
			b.Run(fmt.Sprintf("%s-%d-rotating-clients", dir.name, clients), func(b *testing.B) {
				data := dir.frame.build()
				progs := []*ebpf.Program{
					rotator(b, dir.typ, dir.ret, dir.empty, dir.addrOff, clients),
					rotator(b, dir.typ, dir.ret, dir.prog(c), dir.addrOff, clients),
					rotator(b, dir.typ, dir.ret, dir.prog(uncached), dir.addrOff, clients),
				}
				for _, p := range progs[1:] {
					perRun(b, p, data, clients) // every client in the map
				}
				const rounds = 5
				fastest := []time.Duration{1 << 62, 1 << 62, 1 << 62}
				for range rounds {
					for i, p := range progs {
						fastest[i] = min(fastest[i], perRun(b, p, data, max(b.N/rounds, 1)))
					}
				}
				report(b, fastest[1], fastest[0])
				b.ReportMetric(float64((fastest[2] - fastest[0]).Nanoseconds()), "uncached-added-ns/pkt")
			})
		}
	}

	// A new client costs an insert; every frame comes from an address not
	// yet in the map, one run each, beside the empty program run the same
	// way.
	b.Run("sia-ipv4-new-client", func(b *testing.B) {
		n := min(b.N, 1<<20)
		var base, cost time.Duration
		for i := range n {
			f := frame{src: netip.AddrFrom4([4]byte{11, byte(i >> 16), byte(i >> 8), byte(i)}), dst: host4, proto: tcp, sport: 40000, dport: 9984, payload: 1400}.build()
			base += perRun(b, empty, f, 1)
			cost += perRun(b, c.xdp, f, 1)
		}
		report(b, cost/time.Duration(n), base/time.Duration(n))
		if _, err := c.Drain(); err != nil {
			b.Fatal(err)
		}
	})
}

func report(b *testing.B, cost, base time.Duration) {
	b.ReportMetric(float64(cost.Nanoseconds()), "ns/pkt")
	b.ReportMetric(float64(base.Nanoseconds()), "empty-ns/pkt")
	// What the program adds over doing nothing: the figure that compares
	// across machines and runs.
	b.ReportMetric(float64((cost - base).Nanoseconds()), "added-ns/pkt")
	b.ReportMetric(float64(cost)/float64(base), "x-empty")
}

func perRun(b *testing.B, prog *ebpf.Program, data []byte, repeat int) time.Duration {
	b.Helper()
	_, d, err := prog.Benchmark(data, repeat, nil)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// rotator returns a program of type typ that counts the 16-bit word at
// addrOff in the frame up to clients, from 0 again past it, and then
// tail-calls target; ret is what it returns if the frame is too short.
func rotator(b *testing.B, typ ebpf.ProgramType, ret uint32, target *ebpf.Program, addrOff int16, clients int) *ebpf.Program {
	b.Helper()
	targets, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.ProgramArray, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { targets.Close() })
	if err := targets.Put(uint32(0), target); err != nil {
		b.Fatal(err)
	}
	// Where data and data_end are in the context: struct xdp_md and
	// struct __sk_buff.
	dataOff, endOff := int16(0), int16(4)
	if typ == ebpf.SchedCLS {
		dataOff, endOff = 76, 80
	}
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:       typ,
		AttachType: attachTypeOf(typ),
		License:    "MIT",
		Instructions: asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.LoadMem(asm.R2, asm.R1, dataOff, asm.Word),
			asm.LoadMem(asm.R3, asm.R1, endOff, asm.Word),
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, int32(addrOff)+2),
			asm.JGT.Reg(asm.R4, asm.R3, "short"),
			asm.LoadMem(asm.R5, asm.R2, addrOff, asm.Half),
			asm.Add.Imm(asm.R5, 1),
			asm.JLT.Imm(asm.R5, int32(clients), "store"),
			asm.Mov.Imm(asm.R5, 0),
			asm.StoreMem(asm.R2, addrOff, asm.R5, asm.Half).WithSymbol("store"),
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.LoadMapPtr(asm.R2, targets.FD()),
			asm.Mov.Imm(asm.R3, 0),
			asm.FnTailCall.Call(),
			asm.Mov.Imm32(asm.R0, int32(ret)).WithSymbol("short"),
			asm.Return(),
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

// attachTypeOf is the attach type the datapath's programs of type typ are
// loaded with (their ELF sections say it): a tail call needs the same.
func attachTypeOf(typ ebpf.ProgramType) ebpf.AttachType {
	if typ == ebpf.XDP {
		return ebpf.AttachXDP
	}
	return ebpf.AttachNone
}

// emptyXDP is the baseline: an XDP program that only returns XDP_PASS.
func emptyXDP(b *testing.B) *ebpf.Program {
	b.Helper()
	return emptyProgram(b, ebpf.XDP, xdpPass)
}

// emptyProgram is a program of type typ that only returns ret.
func emptyProgram(b *testing.B, typ ebpf.ProgramType, ret uint32) *ebpf.Program {
	b.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         typ,
		AttachType:   attachTypeOf(typ),
		License:      "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm32(asm.R0, int32(ret)), asm.Return()},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}
