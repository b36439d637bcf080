package bpfgo

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

// Bits of the datapath's port_flags table; they match enum port_flag in
// bpf/types.h (the classification tests fail if they drift apart).
const (
	portConsensus uint8 = 1 << iota
	portSiamux
	portQUIC
)

// flags builds the datapath's port_flags table.
func (p Ports) flags() ([65536]uint8, error) {
	var table [65536]uint8
	for _, set := range []struct {
		ports []uint16
		flag  uint8
	}{
		{p.Consensus, portConsensus},
		{p.Siamux, portSiamux},
		{p.QUIC, portQUIC},
	} {
		for _, port := range set.ports {
			if port == 0 {
				return table, fmt.Errorf("port 0 is not a valid Sia port (accepted: 1-65535)")
			}
			table[port] |= set.flag
		}
	}
	if both := p.overlap(); both != 0 {
		return table, fmt.Errorf("TCP port %d is both a consensus and a siamux port; a TCP port belongs to one class", both)
	}
	return table, nil
}

// overlap returns a port in both TCP sets, or 0.
func (p Ports) overlap() uint16 {
	for _, port := range p.Consensus {
		if slices.Contains(p.Siamux, port) {
			return port
		}
	}
	return 0
}
