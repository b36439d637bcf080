package bpfgo

import "github.com/back2basic/collector/traffic"

// Bits of the datapath's port_flags table; they match enum port_flag in
// bpf/types.h (the classification tests fail if they drift apart).
const (
	portConsensus uint8 = 1 << iota
	portSiamux
	portQUIC
)

// portFlags builds the datapath's port_flags table from p.
func portFlags(p traffic.Ports) ([65536]uint8, error) {
	var table [65536]uint8
	if err := p.Validate(); err != nil {
		return table, err
	}
	for _, set := range []struct {
		ports []uint16
		flag  uint8
	}{
		{p.Consensus, portConsensus},
		{p.Siamux, portSiamux},
		{p.QUIC, portQUIC},
	} {
		for _, port := range set.ports {
			table[port] |= set.flag
		}
	}
	return table, nil
}
