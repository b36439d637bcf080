// Package traffic is the model every part of the collector shares: the Sia
// classes and directions, the bytes and packets counted per client, and
// the ports that decide the class.
package traffic

import "fmt"

// Class is the Sia service a packet belongs to.
type Class int

// The classes, in the order the datapath stores them.
const (
	Consensus Class = iota // TCP, the syncer port (default 9981)
	Siamux                 // TCP, RHP4 over siamux (default 9984)
	QUIC                   // UDP, RHP4 over QUIC (default 9984)
	NumClasses
)

// Classes returns every class, in order.
func Classes() []Class {
	out := make([]Class, NumClasses)
	for c := range NumClasses {
		out[c] = c
	}
	return out
}

// String returns the name used in column names and live lines.
func (c Class) String() string {
	switch c {
	case Consensus:
		return "consensus"
	case Siamux:
		return "siamux"
	case QUIC:
		return "quic"
	}
	return "unknown"
}

// MarshalText writes the class by its name, so it reads as one in JSON.
func (c Class) MarshalText() ([]byte, error) {
	if c < 0 || c >= NumClasses {
		return nil, fmt.Errorf("class %d: accepted: 0 to %d", int(c), NumClasses-1)
	}
	return []byte(c.String()), nil
}

// ParseClass reads a class by its name: consensus, siamux or quic.
func ParseClass(name string) (Class, error) {
	for _, c := range Classes() {
		if c.String() == name {
			return c, nil
		}
	}
	return 0, fmt.Errorf("class %q: accepted: consensus, siamux, quic", name)
}

// UnmarshalText reads a class as ParseClass does.
func (c *Class) UnmarshalText(b []byte) error {
	parsed, err := ParseClass(string(b))
	if err != nil {
		return err
	}
	*c = parsed
	return nil
}

// Direction is seen from the host: Up leaves it, Down reaches it.
type Direction int

// The directions, in the order the datapath stores them.
const (
	Up   Direction = iota // host -> client, counted at TC egress
	Down                  // client -> host, counted at XDP ingress
	NumDirections
)

// String returns "up" or "down".
func (d Direction) String() string {
	if d == Up {
		return "up"
	}
	return "down"
}

// Tally counts L2 frame bytes (Ethernet header included, FCS excluded) and
// frames.
type Tally struct {
	Bytes   uint64
	Packets uint64
}

// Add adds o to t.
func (t *Tally) Add(o Tally) {
	t.Bytes += o.Bytes
	t.Packets += o.Packets
}

// Traffic holds one client's tallies per class and direction.
type Traffic [NumClasses][NumDirections]Tally

// Add adds o to t.
func (t *Traffic) Add(o *Traffic) {
	for c := range t {
		for d := range t[c] {
			t[c][d].Add(o[c][d])
		}
	}
}

// Sub returns t less o; o must not exceed t anywhere.
func (t Traffic) Sub(o *Traffic) Traffic {
	for c := range t {
		for d := range t[c] {
			t[c][d].Bytes -= o[c][d].Bytes
			t[c][d].Packets -= o[c][d].Packets
		}
	}
	return t
}

// Bytes is the sum of bytes over every class and direction.
func (t Traffic) Bytes() uint64 {
	return t.sum(func(c Tally) uint64 { return c.Bytes })
}

// Packets is the sum of packets over every class and direction.
func (t Traffic) Packets() uint64 {
	return t.sum(func(c Tally) uint64 { return c.Packets })
}

// sum adds up one field of every tally.
func (t *Traffic) sum(field func(Tally) uint64) uint64 {
	var n uint64
	for c := range t {
		for d := range t[c] {
			n += field(t[c][d])
		}
	}
	return n
}

// IsZero reports whether nothing was counted.
func (t Traffic) IsZero() bool {
	return t == Traffic{}
}

// Sample is what one client moved since the previous drain.
type Sample struct {
	// Client is the remote address, or Other for the entry that takes the
	// packets of clients that did not fit in the counter map; its totals
	// are still exact.
	Client  Client
	Traffic Traffic
	// Proven says the client proved in this period that it is real: the
	// host sent it what a blind forger cannot make it send (TCP data with
	// ACK and neither SYN nor RST, or a QUIC 1-RTT datagram of 256 bytes
	// or more; see proves in bpf/collector.c).
	Proven bool
}
