package config

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/agg"
	"github.com/back2basic/collector/cost"
	"github.com/back2basic/collector/pgsync"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"

	"github.com/back2basic/collector/bpfgo"
)

// load runs Load with file as the env file and env as the environment.
func load(t *testing.T, file string, env map[string]string, args ...string) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "collector.env")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	return Load("collector", append([]string{"-config", path}, args...), lookup, io.Discard)
}

func TestDefaults(t *testing.T) {
	c, err := Load("collector", []string{"-config", filepath.Join(t.TempDir(), "none")}, func(string) (string, bool) { return "", false }, io.Discard)
	if err == nil {
		t.Fatalf("an explicit -config that does not exist must be an error, got %+v", c)
	}
	c, err = load(t, "# only a comment\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		SQLitePath:    "/var/lib/collector/collector.db",
		Ports:         traffic.Ports{Consensus: []uint16{9981}, Siamux: []uint16{9984}, QUIC: []uint16{9984}},
		PinPath:       bpfgo.DefaultPinPath,
		FlushInterval: time.Minute,
		LiveInterval:  30 * time.Second,
		XDPMode:       bpfgo.XDPAuto,
		TCMode:        bpfgo.TCAuto,
		MaxClients:    bpfgo.DefaultMaxClients,
		MaxClientRows: agg.DefaultMaxClientRows,
		ReverseDNS:    true,
		// The issue asked for two weeks of minutes and 400 days of
		// hours.
		MinuteRetention: 14 * 24 * time.Hour,
		HourlyRetention: 400 * 24 * time.Hour,
		MaxPendingRows:  200_000,
		// Loopback, off the ports of hostd, renterd and walletd.
		HTTPListen:        "127.0.0.1:9986",
		MetricsTopClients: 20,
		BillingDay:        1,
		SpikeAlerts:       true,
		SpikeSensitivity:  6,
		SpikeMinRate:      128 << 10,
		SpikeDays:         7,
		QuotaThresholds:   []float64{0.8, 1},
		SyncInterval:      time.Minute,
		// hostd's API where hostd serves it; read only with a password.
		HostdURL: "http://127.0.0.1:9980/api", HostdInterval: 2 * time.Minute,
		// The rollups: minute rows are many, and few receivers want
		// them.
		SyncHTTPTables:  []store.Table{store.Hours, store.Days},
		SyncHTTPTimeout: 30 * time.Second,
		// Every table, as before SYNC_POSTGRES_TABLES; central rows
		// kept forever.
		SyncTables: []store.Table{store.Minutes, store.Hours, store.Days},
		// The divergence alert, on while hostd is read.
		HostdDivergence:       true,
		DivergenceSensitivity: 5,
		DivergenceMinBytes:    4 << 20,
		DivergencePeriods:     3,
		DivergenceDays:        7,
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
}

func TestPrecedence(t *testing.T) {
	file := "INTERFACE=eth1\nPORT_RHP4_SIAMUX=\"9984, 9985\"\nFLUSH_INTERVAL=5s\nPINNED_MAPS=1\n"
	env := map[string]string{"FLUSH_INTERVAL": "10s", "LIVE_INTERVAL": "0"}
	c, err := load(t, file, env, "-flush-interval", "2s", "-interface", "bond0, vlan7")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Interfaces; !reflect.DeepEqual(got, []string{"bond0", "vlan7"}) {
		t.Errorf("interfaces %v: the flag must win over the file", got)
	}
	if c.FlushInterval != 2*time.Second {
		t.Errorf("flush interval %v: the flag must win over env and file", c.FlushInterval)
	}
	if c.LiveInterval != 0 {
		t.Errorf("live interval %v: the environment must win over the default", c.LiveInterval)
	}
	if !reflect.DeepEqual(c.Ports.Siamux, []uint16{9984, 9985}) || !c.Pinned {
		t.Errorf("file settings not applied: %+v", c)
	}
}

func TestBadValuesNameTheSetting(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"PORT_SIA_CONSENSUS": "9981,99999"}, `PORT_SIA_CONSENSUS="9981,99999" (from environment): "99999" is not a port; accepted: ports 1-65535`},
		{map[string]string{"PORT_RHP4_QUIC": ""}, "PORT_RHP4_QUIC"},
		{map[string]string{"PORT_RHP4_SIAMUX": "9981"}, "both a consensus and a siamux port"},
		{map[string]string{"FLUSH_INTERVAL": "10ms"}, "FLUSH_INTERVAL"},
		{map[string]string{"FLUSH_INTERVAL": "soon"}, `FLUSH_INTERVAL="soon" (from environment): not an interval that tiles a minute; accepted: 1s, 2s, 3s, 4s, 5s, 6s, 10s, 12s, 15s, 20s, 30s or 1m`},
		{map[string]string{"FLUSH_INTERVAL": "7m"}, `FLUSH_INTERVAL="7m" (from environment): not an interval that tiles a minute`},
		{map[string]string{"FLUSH_INTERVAL": "90s"}, "FLUSH_INTERVAL"},
		{map[string]string{"FLUSH_INTERVAL": "7s"}, "FLUSH_INTERVAL"},
		{map[string]string{"FLUSH_INTERVAL": "2m"}, "FLUSH_INTERVAL"},
		{map[string]string{"FLUSH_INTERVAL": "1.5s"}, "FLUSH_INTERVAL"},
		{map[string]string{"PINNED_MAPS": "maybe"}, "PINNED_MAPS"},
		{map[string]string{"XDP_MODE": "offload"}, "accepted: auto, native, generic"},
		{map[string]string{"TC_MODE": "qdisc"}, "TC_MODE"},
		{map[string]string{"MAX_CLIENTS": "0"}, "MAX_CLIENTS"},
		{map[string]string{"MAX_CLIENT_ROWS": "0"}, `MAX_CLIENT_ROWS="0" (from environment): not a count; accepted: 1 to 16777216`},
		{map[string]string{"MAX_CLIENT_ROWS": "many"}, "MAX_CLIENT_ROWS"},
		{map[string]string{"INTERFACE": "a-very-long-interface-name"}, "INTERFACE"},
		{map[string]string{"PIN_PATH": "relative/dir"}, "PIN_PATH"},
		{map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{map[string]string{"RETENTION_MINUTES_DAYS": "0"}, `RETENTION_MINUTES_DAYS="0" (from environment): not a number of days; accepted: 1 to 36500`},
		{map[string]string{"RETENTION_HOURLY_DAYS": "2w"}, "RETENTION_HOURLY_DAYS"},
		{map[string]string{"RETENTION_HOURLY_DAYS": "7"}, "RETENTION_HOURLY_DAYS, RETENTION_MINUTES_DAYS: hourly rows kept 168h0m0s, minute rows 336h0m0s; accepted: hourly rows kept at least as long"},
		{map[string]string{"PENDING_MAX_ROWS": "10"}, "PENDING_MAX_ROWS"},
		{map[string]string{"HTTP_LISTEN": "9986"}, "HTTP_LISTEN"},
		{map[string]string{"HTTP_LISTEN": "127.0.0.1:99999"}, "HTTP_LISTEN"},
		{map[string]string{"HTTP_ALLOWED_HOSTS": "collector.example.net,proxy.example.net:443"}, `HTTP_ALLOWED_HOSTS="collector.example.net,proxy.example.net:443" (from environment): "proxy.example.net:443" is not a host name; accepted: names or IP addresses without a port, comma-separated, such as collector.example.net`},
		{map[string]string{"HTTP_ALLOWED_HOSTS": "https://collector.example.net"}, "HTTP_ALLOWED_HOSTS"},
		{map[string]string{"METRICS_TOP_CLIENTS": "-1"}, "METRICS_TOP_CLIENTS"},
		{map[string]string{"BILLING_DAY": "32"}, "BILLING_DAY"},
		{map[string]string{"BILLING_DAY": "0"}, "BILLING_DAY"},
		{map[string]string{"QUOTA_THRESHOLDS": "80,abc"}, "QUOTA_THRESHOLDS"},
		{map[string]string{"QUOTA_UP_BYTES": "-1"}, "QUOTA_UP_BYTES"},
		{map[string]string{"ALERT_SPIKE_DAYS": "1"}, "ALERT_SPIKE_DAYS"},
		{map[string]string{"EGRESS_COST_PER_TB": "1,25"}, `EGRESS_COST_PER_TB="1,25" (from environment): not a price; accepted: a decimal number of the operator's currency per TB such as 1.25, 0 for no cost`},
		{map[string]string{"EGRESS_COST_PER_TB": "-1"}, "EGRESS_COST_PER_TB"},
		{map[string]string{"EGRESS_COST_PER_TB": "Inf"}, "EGRESS_COST_PER_TB"},
		{map[string]string{"EGRESS_COST_PER_TB": "NaN"}, "EGRESS_COST_PER_TB"},
		{map[string]string{"EGRESS_FREE_BYTES": "1TB"}, `EGRESS_FREE_BYTES="1TB" (from environment): not a byte count; accepted: a whole number of bytes, 0 for no allowance`},
		{map[string]string{"SIACOIN_PRICE": "$0.004"}, "SIACOIN_PRICE"},
		{map[string]string{"QUOTA_ON_PROJECTION": "maybe"}, "QUOTA_ON_PROJECTION"},
		{map[string]string{"QUOTA_ON_PROJECTION": "1"}, "QUOTA_ON_PROJECTION=1 alerts on a quota, and none is set; accepted: with QUOTA_UP_BYTES, QUOTA_DOWN_BYTES or QUOTA_TOTAL_BYTES above 0"},
		{map[string]string{"ALERT_HOSTD_DIVERGENCE": "sometimes"}, "ALERT_HOSTD_DIVERGENCE"},
		{map[string]string{"ALERT_HOSTD_DIVERGENCE_SENSITIVITY": "0.5"}, `ALERT_HOSTD_DIVERGENCE_SENSITIVITY="0.5" (from environment): not a sensitivity; accepted: 1 to 100`},
		{map[string]string{"ALERT_HOSTD_DIVERGENCE_MIN_BYTES": "4MiB"}, "ALERT_HOSTD_DIVERGENCE_MIN_BYTES"},
		{map[string]string{"ALERT_HOSTD_DIVERGENCE_PERIODS": "0"}, "ALERT_HOSTD_DIVERGENCE_PERIODS"},
		{map[string]string{"ALERT_HOSTD_DIVERGENCE_DAYS": "91"}, "ALERT_HOSTD_DIVERGENCE_DAYS"},
		{map[string]string{"ALERT_WEBHOOK_URL": "ftp://hooks.example/s3cr3t"}, "ALERT_WEBHOOK_URL"},
		{map[string]string{"SYNC_HTTP_URL": "http://fleet.example/in?key=s3cr3t"}, "SYNC_HTTP_URL (from environment): http to fleet.example would send rows and token in the clear; accepted: https://, or http:// to a loopback address"},
		{map[string]string{"SYNC_HTTP_URL": "ftp://fleet.example/s3cr3t"}, "SYNC_HTTP_URL (from environment): scheme ftp; accepted"},
		{map[string]string{"SYNC_HTTP_URL": "fleet.example/s3cr3t"}, "SYNC_HTTP_URL (from environment): not a URL; accepted"},
		{map[string]string{"SYNC_HTTP_TABLES": "hourly,weekly"}, `SYNC_HTTP_TABLES="hourly,weekly" (from environment): not a list of tables; accepted: one or more of minute, hourly, daily`},
		{map[string]string{"SYNC_HTTP_TABLES": "daily,daily"}, "SYNC_HTTP_TABLES"},
		{map[string]string{"SYNC_HTTP_TABLES": ""}, "SYNC_HTTP_TABLES"},
		{map[string]string{"SYNC_HTTP_TIMEOUT": "0s"}, "SYNC_HTTP_TIMEOUT"},
		{map[string]string{"SYNC_POSTGRES_TABLES": "hourly,weekly"}, `SYNC_POSTGRES_TABLES="hourly,weekly" (from environment): not a list of tables; accepted: one or more of minute, hourly, daily`},
		{map[string]string{"SYNC_POSTGRES_TABLES": " , "}, "SYNC_POSTGRES_TABLES"},
		{map[string]string{"SYNC_POSTGRES_PARTITIONS": "none"}, `SYNC_POSTGRES_PARTITIONS="none" (from environment): unknown mode; accepted: manage, use`},
		{map[string]string{"SYNC_POSTGRES_RETENTION_HOURLY_DAYS": "-1"}, "SYNC_POSTGRES_RETENTION_HOURLY_DAYS"},
		{map[string]string{"SYNC_POSTGRES_RETENTION_MINUTES_DAYS": "7"}, "SYNC_POSTGRES_RETENTION_MINUTES_DAYS=7 is shorter than RETENTION_MINUTES_DAYS=14; accepted: 0 (forever) or at least 14"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, err := load(t, "\n", tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Fatalf("error shows the secret: %q", err)
			}
		})
	}
}

// SYNC_POSTGRES_TABLES takes any of the tables, in any order;
// the central retention takes whole days, at least the local ones.
func TestSyncTablesAndRetention(t *testing.T) {
	c, err := load(t, "SYNC_POSTGRES_TABLES=daily, hourly\nSYNC_POSTGRES_PARTITIONS=use\n",
		map[string]string{"SYNC_POSTGRES_RETENTION_MINUTES_DAYS": "30", "SYNC_POSTGRES_RETENTION_HOURLY_DAYS": "400"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []store.Table{store.Days, store.Hours}; !reflect.DeepEqual(c.SyncTables, want) {
		t.Errorf("SyncTables %v, want %v", c.SyncTables, want)
	}
	if want := (store.Retention{Minutes: 30 * 24 * time.Hour, Hourly: 400 * 24 * time.Hour}); c.SyncRetention != want || c.SyncPartitions != pgsync.UsePartitions {
		t.Errorf("SyncRetention %+v, SyncPartitions %v", c.SyncRetention, c.SyncPartitions)
	}
}

// Every interval that tiles a minute is taken, however it is written.
func TestFlushIntervalsTileAMinute(t *testing.T) {
	for _, v := range []string{"1s", "2s", "3s", "4s", "5s", "6s", "10s", "12s", "15s", "20s", "30s", "60s", "1m", "1m0s", "1000ms"} {
		c, err := load(t, "\n", map[string]string{"FLUSH_INTERVAL": v})
		if err != nil {
			t.Errorf("FLUSH_INTERVAL=%s: %v", v, err)
			continue
		}
		if time.Minute%c.FlushInterval != 0 {
			t.Errorf("FLUSH_INTERVAL=%s read as %v, which does not tile a minute", v, c.FlushInterval)
		}
	}
}

func TestForReaders(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "collector.env")
	if err := os.WriteFile(file, []byte("SQLITE_PATH=/srv/from-file.db\nINTERFACE=eth0\nQUOTA_UP_BYTES=1000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	tests := []struct {
		name    string
		file    string
		env     map[string]string
		want    string
		wantErr string
	}{
		// Whatever the default file holds on this machine, if it exists.
		{name: "default file", file: "", env: map[string]string{"SQLITE_PATH": "/srv/env.db"}, want: "/srv/env.db"},
		{name: "env file", file: file, want: "/srv/from-file.db"},
		{name: "environment wins", file: file, env: map[string]string{"SQLITE_PATH": "/srv/env.db"}, want: "/srv/env.db"},
		{name: "named file missing", file: filepath.Join(dir, "none.env"), wantErr: "read env file"},
		{name: "empty", file: file, env: map[string]string{"SQLITE_PATH": ""}, wantErr: `SQLITE_PATH="" (from environment): empty; accepted: a file path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ForReaders(tt.file, env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || c.SQLitePath != tt.want {
				t.Fatalf("got %+v, %v; want SQLITE_PATH %q", c, err, tt.want)
			}
			if c.Interfaces != nil {
				t.Errorf("INTERFACE read too: %v", c.Interfaces)
			}
			if tt.file == file && c.QuotaUp != 1000 {
				t.Errorf("QUOTA_UP_BYTES %d, want the file's 1000", c.QuotaUp)
			}
		})
	}
}

func TestDefaultRouteInterface(t *testing.T) {
	for dir, want := range map[string]string{"testdata/v4": "enp3s0", "testdata/v6only": "eth9"} {
		got, err := DefaultRouteInterface(dir)
		if err != nil || got != want {
			t.Errorf("%s: got %q, %v; want %q", dir, got, err, want)
		}
	}
	if _, err := DefaultRouteInterface(t.TempDir()); err == nil {
		t.Error("no route files: want an error")
	}
}

// HTTP_ALLOWED_HOSTS takes names and addresses, comma-separated.
func TestHTTPAllowedHosts(t *testing.T) {
	c, err := load(t, "HTTP_ALLOWED_HOSTS=collector.example.net, 192.0.2.7,[2001:db8::1]\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"collector.example.net", "192.0.2.7", "[2001:db8::1]"}; !reflect.DeepEqual(c.HTTPAllowedHosts, want) {
		t.Errorf("allowed hosts %q, want %q", c.HTTPAllowedHosts, want)
	}
}

func TestEgressSettings(t *testing.T) {
	c, err := load(t, "EGRESS_COST_PER_TB=1.25\nEGRESS_FREE_BYTES=20000000000000\n", map[string]string{"SIACOIN_PRICE": "0.004", "QUOTA_ON_PROJECTION": "1", "QUOTA_UP_BYTES": "1000"})
	if err != nil {
		t.Fatal(err)
	}
	if want := (cost.Pricing{PerTB: 1.25, FreeBytes: 20e12, SiacoinPrice: 0.004}); c.Egress != want || !c.QuotaOnProjection {
		t.Errorf("egress %+v, on projection %v; want %+v, true", c.Egress, c.QuotaOnProjection, want)
	}
	c, err = load(t, "EGRESS_COST_PER_TB=\n", nil)
	if err != nil || c.Egress.Set() {
		t.Errorf("an empty EGRESS_COST_PER_TB gave %+v, %v; want no cost", c.Egress, err)
	}
}
