package hostd_test

import (
	"context"
	"errors"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/hostd"
	"github.com/back2basic/collector/internal/testkit/hostdtest"
)

const password = "s3cret-api-password"

func client(t *testing.T, url, pass string) *hostd.Client {
	t.Helper()
	c, err := hostd.New(url, pass)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPeriodMetricsReadsBothVersions(t *testing.T) {
	start := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	for _, v := range []hostdtest.Version{hostdtest.V2_10_2, hostdtest.V2_5_0} {
		t.Run(string(v), func(t *testing.T) {
			srv := hostdtest.Start(t, password, v)
			price := new(big.Int).Exp(big.NewInt(10), big.NewInt(14), nil)
			earned, _ := new(big.Int).SetString("123456789012345678901234567", 10)
			srv.AddPeriod(hostdtest.Totals{Start: start, RHP: hostdtest.Data{Ingress: 10, Egress: 20}, Syncer: hostdtest.Data{Ingress: 3, Egress: 4}, EarnedEgress: earned, EgressPrice: price})
			srv.AddPeriod(hostdtest.Totals{Start: start.Add(10 * time.Minute), RHP: hostdtest.Data{Ingress: 50, Egress: 70}, EarnedEgress: earned, EgressPrice: price})
			got, err := client(t, srv.APIURL(), password).PeriodMetrics(context.Background(), start.Add(time.Minute), 3)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 {
				t.Fatalf("%d periods, want 3", len(got))
			}
			for i, want := range []uint64{20, 20, 70} {
				if !got[i].Timestamp.Equal(start.Add(time.Duration(i) * hostd.Period)) {
					t.Errorf("period %d stamped %v", i, got[i].Timestamp)
				}
				if got[i].Data.RHP.Egress != want {
					t.Errorf("period %d rhp egress %d, want %d", i, got[i].Data.RHP.Egress, want)
				}
			}
			if got[0].Revenue.Earned.Egress.Cmp(earned) != 0 || got[0].Pricing.EgressPrice.Cmp(price) != 0 {
				t.Errorf("revenue %v price %v, want %v %v", &got[0].Revenue.Earned.Egress.Int, &got[0].Pricing.EgressPrice.Int, earned, price)
			}
			if hasSyncer := got[0].Data.Syncer != nil; hasSyncer != (v != hostdtest.V2_5_0) {
				t.Errorf("syncer data present = %v for %s", hasSyncer, v)
			}
		})
	}
}

func TestPeersGivesAddresses(t *testing.T) {
	srv := hostdtest.Start(t, password, hostdtest.V2_10_2)
	srv.SetPeers(hostdtest.Peer{Address: "203.0.113.7:9981", Inbound: true}, hostdtest.Peer{Address: "[2001:db8::1]:9981"}, hostdtest.Peer{Address: "node.example:9981"})
	peers, err := client(t, srv.APIURL(), password).Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range peers {
		a, ok := p.Addr()
		got = append(got, a.String()+map[bool]string{true: " in", false: " out"}[p.Inbound]+map[bool]string{true: "", false: " (name)"}[ok])
	}
	if want := "203.0.113.7 in,2001:db8::1 out,invalid IP out (name)"; strings.Join(got, ",") != want {
		t.Errorf("peers %q, want %q", strings.Join(got, ","), want)
	}
}

func TestErrorsNameTheCauseNotThePassword(t *testing.T) {
	srv := hostdtest.Start(t, password, hostdtest.V2_10_2)
	ctx := context.Background()
	if _, err := client(t, srv.APIURL(), "wrong").Peers(ctx); !errors.Is(err, hostd.ErrUnauthorized) {
		t.Errorf("wrong password: %v, want ErrUnauthorized", err)
	}
	srv.Fail(http.StatusInternalServerError)
	_, err := client(t, srv.APIURL(), password).Peers(ctx)
	var se *hostd.StatusError
	if !errors.As(err, &se) || se.Code != 500 || !strings.Contains(err.Error(), "database is locked") {
		t.Errorf("500: %v", err)
	}
	srv.Fail(0)
	srv.Stall(time.Second)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := client(t, srv.APIURL(), password).Peers(short); err == nil {
		t.Error("a stalled hostd answered in time")
	} else if strings.Contains(err.Error(), password) {
		t.Errorf("error holds the password: %v", err)
	}
	if _, err := hostd.New("http://:pw@127.0.0.1:9980/api", ""); err == nil || strings.Contains(err.Error(), "pw") {
		t.Errorf("a password in the URL: %v", err)
	}
	if _, err := hostd.New("127.0.0.1:9980", ""); err == nil || !strings.Contains(err.Error(), "accepted") {
		t.Errorf("a URL without scheme: %v", err)
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	var followed bool
	mux := http.NewServeMux()
	mux.HandleFunc("/api/syncer/peers", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) })
	mux.HandleFunc("/elsewhere", func(http.ResponseWriter, *http.Request) { followed = true })
	srv := httptestServer(t, mux)
	_, err := client(t, srv+"/api", password).Peers(context.Background())
	if followed || err == nil || !strings.Contains(err.Error(), "/elsewhere") {
		t.Errorf("redirect: followed=%v err=%v", followed, err)
	}
}
