package traffic

import (
	"fmt"
	"slices"
)

// Ports are the port sets of the three classes. Consensus and Siamux are
// TCP ports and must not overlap; QUIC ports are UDP and may equal them.
type Ports struct {
	Consensus []uint16
	Siamux    []uint16
	QUIC      []uint16
}

// DefaultPorts are hostd's defaults.
var DefaultPorts = Ports{
	Consensus: []uint16{9981},
	Siamux:    []uint16{9984},
	QUIC:      []uint16{9984},
}

// Validate checks that every port is 1-65535 and no TCP port is in both
// the consensus and the siamux set.
func (p Ports) Validate() error {
	for _, set := range [][]uint16{p.Consensus, p.Siamux, p.QUIC} {
		if slices.Contains(set, 0) {
			return fmt.Errorf("port 0 is not a valid Sia port (accepted: 1-65535)")
		}
	}
	for _, port := range p.Consensus {
		if slices.Contains(p.Siamux, port) {
			return fmt.Errorf("TCP port %d is both a consensus and a siamux port; a TCP port belongs to one class", port)
		}
	}
	return nil
}
