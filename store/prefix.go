package store

import (
	"context"
	"database/sql/driver"
	"fmt"
	"net/netip"

	"modernc.org/sqlite"

	"github.com/back2basic/collector/traffic"
)

// The networks clients are grouped into: what one site, or one forger
// cycling through addresses, typically holds, IPv4 /24 being the smallest
// block routed on the Internet and IPv6 /48 a site's allocation.
const (
	prefixBits4 = 24
	prefixBits6 = 48
)

// prefixOf returns the network c is grouped into, or the zero Prefix for
// traffic.Other.
func prefixOf(c traffic.Client) netip.Prefix {
	bits := prefixBits6
	if c.Addr().Is4() {
		bits = prefixBits4
	}
	p, _ := c.Addr().Prefix(bits) // bits fit either family
	return p
}

// clientPrefixSQL is the SQL function client_prefix(ip): the network of
// the client stored as ip, as ParsePrefix reads it, or "other" for Other,
// so that SQLite groups and ranks networks as it does clients.
const clientPrefixSQL = "client_prefix"

func init() {
	sqlite.MustRegisterDeterministicScalarFunction(clientPrefixSQL, 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		var ip string
		switch v := args[0].(type) {
		case string:
			ip = v
		case []byte:
			ip = string(v)
		default:
			return nil, fmt.Errorf("%s(%v): not an address", clientPrefixSQL, v)
		}
		c, err := traffic.ParseClient(ip)
		if err != nil {
			return nil, err
		}
		if c.IsOther() {
			return c.String(), nil
		}
		return prefixOf(c).String(), nil
	})
}

// PrefixTotal is the traffic of the clients of one network summed over a
// span of time.
type PrefixTotal struct {
	// Prefix is the network: an IPv4 /24 or an IPv6 /48 (IPv4-mapped
	// addresses count as IPv4); the zero Prefix stands for traffic.Other.
	Prefix  netip.Prefix
	Traffic traffic.Traffic
}

// PrefixTop is the answer of TopPrefixes.
type PrefixTop struct {
	// Prefixes are the busiest networks, busiest first.
	Prefixes []PrefixTotal
	// Rest sums the networks left out; RestPrefixes counts them.
	Rest         traffic.Traffic
	RestPrefixes int
}

// byPrefix ranks networks: the SQL function client_prefix keys the sums,
// and networks have no names.
var byPrefix = grouping{key: clientPrefixSQL + "(ip)", dns: "''", from: "sums AS s"}

// TopPrefixes is TopClients per network rather than per client: every
// client's traffic is summed into its IPv4 /24 or IPv6 /48, Other into a
// row of its own, and the n busiest networks are returned with the rest
// summed. As in TopClients, SQLite does the grouping, the sums, the
// ranking and the cut, so memory is bounded by n even when a flood of
// forged addresses fills a day with millions of clients: client_prefix
// holds nothing between rows, and SQLite groups and sorts through its page
// cache and temporary files, keeping only n rows for the LIMIT.
func (s *Store) TopPrefixes(ctx context.Context, q Query, n int, classes []traffic.Class) (PrefixTop, error) {
	var top PrefixTop
	var err error
	top.Rest, top.RestPrefixes, err = s.rank(ctx, q, n, classes, byPrefix, func(key, _, _ string, t *traffic.Traffic) error {
		p := PrefixTotal{Traffic: *t}
		if key != traffic.Other.String() {
			var err error
			if p.Prefix, err = netip.ParsePrefix(key); err != nil {
				return err
			}
		}
		top.Prefixes = append(top.Prefixes, p)
		return nil
	})
	if err != nil {
		return PrefixTop{}, fmt.Errorf("read totals per network from %s: %w", s.path, err)
	}
	return top, nil
}
