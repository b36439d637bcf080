package bpfgo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/back2basic/collector/bpf"
	"github.com/back2basic/collector/traffic"
)

// An upgrade (or another MAX_CLIENTS) can find pinned counter maps of a
// layout the new programs cannot use. Load does not drop them: it moves
// their pins into carryDir, out of the way of the new maps, where the
// programs of the earlier run still count in them until the interfaces
// are handed to the new programs. DrainCarried then reads them; the
// caller stores what they held and releases each pin. A start that stops
// anywhere before the release finds the pins in carryDir again.
const carryDir = "carried"

// The layouts released so far that hold counts: a 16-byte key (the
// address) and six tallies of bytes and packets (three classes, two
// directions, as in traffic.Traffic), then since the proof a flags word.
// They are read by size and offset, not through the Go types of today's
// layout, which a later release may change.
const (
	carriedKeySize   = 16
	carriedTallies   = int(traffic.NumClasses) * int(traffic.NumDirections)
	carriedNoFlags   = carriedTallies * 16
	carriedWithFlags = carriedNoFlags + 8
)

// A carried pin is named <name>-<map ID>; its CarriedMap.ID is the boot's
// ID and the map ID.
const (
	carriedIDSep      = "-" // bpffs takes no dot in a name
	carriedBootIDPath = "/proc/sys/kernel/random/boot_id"
)

// CarriedMap is a pinned counter map of an earlier layout and what it
// counted.
type CarriedMap struct {
	// ID names the map for as long as it can exist: pins do not outlive
	// a boot, and the kernel does not give a live map's ID to another.
	// A caller that stores Samples records ID with them, so that a start
	// that stopped before Release does not store them twice.
	ID      string
	Samples []traffic.Sample
	pin     string
}

// Release removes the map's pin: its counts are stored.
func (m CarriedMap) Release() error {
	if err := os.Remove(m.pin); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove carried pin: %w", err)
	}
	return nil
}

// setAside moves the pin at path, a counter map of another layout, into
// carryDir under a name that keeps it apart from any map set aside
// before: its name and its kernel map ID.
func (c *Counters) setAside(path string) error {
	m, err := ebpf.LoadPinnedMap(path, nil)
	if err != nil {
		return fmt.Errorf("open pinned map of another layout: %w", err)
	}
	defer m.Close()
	info, err := m.Info()
	if err != nil {
		return fmt.Errorf("read map info of %s: %w", path, err)
	}
	id, ok := info.ID()
	if !ok {
		return fmt.Errorf("the kernel gives no ID for %s; needs 4.13 or later", path)
	}
	dir := filepath.Join(c.pinPath, carryDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	to := filepath.Join(dir, filepath.Base(path)+carriedIDSep+strconv.FormatUint(uint64(id), 10))
	if err := os.Rename(path, to); err != nil {
		return fmt.Errorf("set aside pinned map of another layout: %w", err)
	}
	c.log.Info("pinned map of another layout set aside to be carried over once the new programs count", "pin", path, "to", to)
	return nil
}

// DrainCarried returns what the maps set aside by this or an earlier
// start counted. Call it once the interfaces run the new programs: it
// first waits until no program of the earlier run can still be adding
// to them, so every count is in what it reads. The maps stay pinned
// until their Release. A map it cannot read is left out, pinned, and
// named in the error; the others are returned all the same.
func (c *Counters) DrainCarried() ([]CarriedMap, error) {
	if c.pinPath == "" {
		return nil, nil
	}
	dir := filepath.Join(c.pinPath, carryDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	if err := waitForPrograms(); err != nil {
		return nil, err
	}
	boot, err := os.ReadFile(carriedBootIDPath)
	if err != nil {
		return nil, fmt.Errorf("read the boot id: %w", err)
	}
	var (
		out  []CarriedMap
		errs []error
	)
	for _, e := range entries {
		m := CarriedMap{pin: filepath.Join(dir, e.Name())}
		_, mapID, _ := strings.Cut(e.Name(), carriedIDSep)
		m.ID = strings.TrimSpace(string(boot)) + "/" + mapID
		if m.Samples, err = readCarried(m.pin); err != nil {
			// It stays pinned, for a release that can read it.
			errs = append(errs, err)
			continue
		}
		out = append(out, m)
	}
	return out, errors.Join(errs...)
}

// waitForPrograms returns once no BPF program that started before the
// call is still running: the kernel waits for that (an RCU grace period)
// before an update of a map of maps returns, here of one made for it.
func waitForPrograms() error {
	inner := &ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1}
	slot, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.ArrayOfMaps, KeySize: 4, ValueSize: 4, MaxEntries: 1, InnerMap: inner})
	if err != nil {
		return fmt.Errorf("wait for the earlier programs: %w", err)
	}
	defer slot.Close()
	m, err := ebpf.NewMap(inner)
	if err != nil {
		return fmt.Errorf("wait for the earlier programs: %w", err)
	}
	defer m.Close()
	if err := slot.Update(uint32(0), m, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("wait for the earlier programs: %w", err)
	}
	return nil
}

// readCarried reads the counter map pinned at path, of a released layout.
func readCarried(path string) ([]traffic.Sample, error) {
	m, err := ebpf.LoadPinnedMap(path, nil)
	if err != nil {
		return nil, fmt.Errorf("open carried map: %w", err)
	}
	defer m.Close()
	vsize := int(m.ValueSize())
	if m.KeySize() != carriedKeySize || (vsize != carriedNoFlags && vsize != carriedWithFlags) {
		return nil, fmt.Errorf("carried map %s has %d-byte keys and %d-byte values; known layouts: %d-byte keys, %d- or %d-byte values",
			path, m.KeySize(), vsize, carriedKeySize, carriedNoFlags, carriedWithFlags)
	}
	var (
		out   []traffic.Sample
		key   = make([]byte, carriedKeySize)
		value = make([]byte, vsize)
	)
	it := m.Iterate()
	for it.Next(&key, &value) {
		s := traffic.Sample{Client: clientOf(bpf.CollectorClientKey{Addr: [16]byte(key)})}
		for i := range carriedTallies {
			t := value[i*16:]
			s.Traffic[i/int(traffic.NumDirections)][i%int(traffic.NumDirections)] = traffic.Tally{
				Bytes: binary.NativeEndian.Uint64(t), Packets: binary.NativeEndian.Uint64(t[8:])}
		}
		if vsize == carriedWithFlags {
			s.Proven = !s.Client.IsOther() && binary.NativeEndian.Uint64(value[carriedNoFlags:])&flagProven != 0
		}
		if !s.Traffic.IsZero() {
			out = append(out, s)
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read carried map %s: %w", path, err)
	}
	return out, nil
}
