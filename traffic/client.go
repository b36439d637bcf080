package traffic

import (
	"fmt"
	"net/netip"
)

// otherName is how Other is written in the ip column, in reports, on the
// command line and in the journal.
const otherName = "other"

// Client is who traffic is counted for: one remote address, or Other, the
// clients counted together because the kernel's map had no room for them
// or because they moved too little for a row of their own. It is
// comparable, so it keys maps; the zero Client is Other.
type Client struct {
	addr netip.Addr // invalid for Other
}

// Other is the clients counted together.
var Other = Client{}

// ClientOf returns the client of addr; an IPv4-mapped IPv6 address is
// the IPv4 client it maps, and the invalid Addr is Other.
func ClientOf(addr netip.Addr) Client {
	return Client{addr.Unmap()}
}

// ParseClient reads a client as String writes it: an IP address, or
// "other".
func ParseClient(s string) (Client, error) {
	if s == otherName {
		return Other, nil
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return Other, fmt.Errorf("client %q: accepted: an IP address, or %s", s, otherName)
	}
	return ClientOf(addr), nil
}

// IsOther reports whether c is Other.
func (c Client) IsOther() bool { return !c.addr.IsValid() }

// Addr returns the client's address; the invalid Addr for Other.
func (c Client) Addr() netip.Addr { return c.addr }

// String returns the address, or "other".
func (c Client) String() string {
	if c.IsOther() {
		return otherName
	}
	return c.addr.String()
}

// Compare orders clients by address, Other first.
func (c Client) Compare(o Client) int { return c.addr.Compare(o.addr) }

// MarshalText writes the client as String does, so it reads as "other" or
// an address in JSON.
func (c Client) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText reads a client as ParseClient does.
func (c *Client) UnmarshalText(b []byte) error {
	parsed, err := ParseClient(string(b))
	if err != nil {
		return err
	}
	*c = parsed
	return nil
}
