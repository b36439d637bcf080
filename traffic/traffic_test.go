package traffic

import (
	"encoding/json"
	"net/netip"
	"testing"
)

func TestClient(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.1")
	mapped := netip.AddrFrom16(v4.As16())
	if got := ClientOf(mapped); got != ClientOf(v4) || got.String() != "192.0.2.1" || !got.Addr().Is4() {
		t.Errorf("ClientOf(%v) = %v, want the IPv4 client", mapped, got)
	}
	if got := ClientOf(netip.Addr{}); got != Other || !got.IsOther() || got.String() != "other" {
		t.Errorf("ClientOf(invalid) = %v, want Other", got)
	}
	var zero Client
	if !zero.IsOther() {
		t.Error("the zero Client is not Other")
	}
	for _, s := range []string{"other", "192.0.2.1", "2001:db8::7"} {
		c, err := ParseClient(s)
		if err != nil || c.String() != s {
			t.Errorf("ParseClient(%q) = %v, %v; want it back", s, c, err)
		}
	}
	if c, err := ParseClient("::ffff:192.0.2.1"); err != nil || c != ClientOf(v4) {
		t.Errorf("ParseClient(v4-mapped) = %v, %v; want the IPv4 client", c, err)
	}
	if _, err := ParseClient("others"); err == nil {
		t.Error("ParseClient(others) = nil error")
	}
	if Other.Compare(ClientOf(v4)) >= 0 {
		t.Error("Other does not sort first")
	}
}

func TestJSON(t *testing.T) {
	in := struct {
		Clients []Client
		Classes []Class
	}{[]Client{Other, ClientOf(netip.MustParseAddr("2001:db8::7"))}, []Class{Consensus, QUIC}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"Clients":["other","2001:db8::7"],"Classes":["consensus","quic"]}`; string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
	out := in
	out.Clients, out.Classes = nil, nil
	if err := json.Unmarshal(b, &out); err != nil || len(out.Clients) != 2 || out.Clients[1] != in.Clients[1] || out.Classes[1] != QUIC {
		t.Errorf("round trip = %+v, %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"Classes":["udp"]}`), &out); err == nil {
		t.Error("class udp read without error")
	}
	if _, err := json.Marshal(NumClasses); err == nil {
		t.Error("NumClasses written as a class")
	}
}

func TestTrafficSums(t *testing.T) {
	var tr Traffic
	tr[Consensus][Up] = Tally{Bytes: 100, Packets: 2}
	tr[QUIC][Down] = Tally{Bytes: 1400, Packets: 1}
	if tr.Bytes() != 1500 || tr.Packets() != 3 {
		t.Errorf("Bytes, Packets = %d, %d; want 1500, 3", tr.Bytes(), tr.Packets())
	}
	sum := tr
	sum.Add(&tr)
	if back := sum.Sub(&tr); back != tr {
		t.Errorf("(t+t)-t = %v, want %v", back, tr)
	}
	if tr.IsZero() || !(Traffic{}).IsZero() {
		t.Error("IsZero wrong")
	}
}
