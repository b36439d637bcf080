// Package config reads collector's settings: defaults, then the env file
// (/etc/collector.env), then the process environment, then command-line
// flags, each overriding the one before. Every setting is defined once, in
// the settings table, with its env name, flag, default and parser, so the
// env file, the flags and the help text cannot drift apart.
package config

import (
	"errors"
	"flag"
	"fmt"
	"github.com/back2basic/collector/hostd"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"

	"github.com/back2basic/collector/agg"
	"github.com/back2basic/collector/alert"
	"github.com/back2basic/collector/bpfgo"
	"github.com/back2basic/collector/cost"
	"github.com/back2basic/collector/httpsync"
	"github.com/back2basic/collector/pgsync"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// Error is a refusal of the settings: restarting with the same ones
// changes nothing.
type Error struct{ Err error }

func (e Error) Error() string { return e.Err.Error() }

func (e Error) Unwrap() error { return e.Err }

// DefaultFile is the env file read unless -config names another.
const DefaultFile = "/etc/collector.env"

// Config is the validated configuration of the daemon.
type Config struct {
	// Interfaces to watch; empty means the default route's interface.
	Interfaces    []string
	SQLitePath    string
	Ports         traffic.Ports
	Pinned        bool
	PinPath       string
	FlushInterval time.Duration
	LiveInterval  time.Duration // 0 turns the live printer off
	XDPMode       bpfgo.XDPMode
	TCMode        bpfgo.TCMode
	MaxClients    uint32
	// MinClientBytes is what a client moves in a flush period to get a
	// row of its own; the rest is stored as 'other'. 0, the default,
	// gives every client a row.
	MinClientBytes uint64
	// MaxClientRows bounds the client rows of a flush period, of an hour
	// and of a day; past it proven clients keep theirs first, then the
	// busiest, and the rest is stored as 'other'.
	MaxClientRows int
	ReverseDNS    bool
	LogLevel      slog.Level
	// MinuteRetention and HourlyRetention are how long minute and hourly
	// rows are kept once rolled up; daily rows are kept forever.
	MinuteRetention time.Duration
	HourlyRetention time.Duration
	// MaxPendingRows bounds the rows held in memory while the database
	// cannot be written.
	MaxPendingRows int
	// HTTPListen is the address of the HTTP server (metrics, API,
	// dashboard); empty turns it off.
	HTTPListen string
	// WebConfigFile is the Prometheus web configuration file (TLS, basic
	// auth) of the HTTP server; empty serves plain HTTP without auth.
	WebConfigFile string
	// HTTPAllowedHosts are the host names, besides HTTPListen's and
	// loopback's, that requests to the HTTP server may give in their
	// Host header: those of a reverse proxy in front of it.
	HTTPAllowedHosts []string
	// MetricsTopClients is how many clients of the last period get series
	// of their own in /metrics, beside 'other'; 0 gives none.
	MetricsTopClients int
	// BillingDay is the day of the month billing periods start on.
	BillingDay int
	// SpikeAlerts turns the consensus spike alerts on; SpikeSensitivity,
	// SpikeMinRate (bytes a second) and SpikeDays tune them.
	SpikeAlerts      bool
	SpikeSensitivity float64
	SpikeMinRate     float64
	SpikeDays        int
	// QuotaUp, QuotaDown and QuotaTotal are bytes per billing period, 0
	// for none; QuotaThresholds are the shares of them that alert.
	QuotaUp, QuotaDown, QuotaTotal uint64
	QuotaThresholds                []float64
	// QuotaOnProjection alerts on the quotas' thresholds crossed by the
	// billing period's projection to its end too.
	QuotaOnProjection bool
	// Egress is what the provider charges for egress, and a siacoin's
	// price in that currency for the margin.
	Egress cost.Pricing
	// WebhookURL receives every alert as JSON when set, with WebhookToken
	// as a bearer token; both are secrets, never logged.
	WebhookURL, WebhookToken string
	// SyncURL is the central PostgreSQL every row is copied to, empty for
	// none; a secret. HostID keeps this host's rows apart there (empty:
	// the machine id), and SyncInterval spaces the syncs.
	SyncURL      string
	HostID       string
	SyncInterval time.Duration
	// HostdURL is hostd's API, read only when HostdPassword (a secret) is
	// set: hostd's figures stored beside the traffic, read every
	// HostdInterval.
	HostdURL, HostdPassword string
	HostdInterval           time.Duration
	// SyncHTTPURL is the endpoint every row of SyncHTTPTables is POSTed
	// to as JSON, empty for none, with SyncHTTPToken as a bearer token;
	// both secrets. SyncHTTPTimeout bounds each request.
	SyncHTTPURL, SyncHTTPToken string
	SyncHTTPTables             []store.Table
	SyncHTTPTimeout            time.Duration
	// SyncTables are the local tables sent; SyncPartitions says whether
	// the collector makes and drops the central partitions, and
	// SyncRetention how long the central side keeps minute and hourly
	// rows (zero: forever).
	SyncTables     []store.Table
	SyncPartitions pgsync.PartitionMode
	SyncRetention  store.Retention
	// HostdDivergence turns on the alert on the RHP bytes on the wire
	// leaving their usual ratio to hostd's count, while hostd is read;
	// the Divergence fields tune it (MinBytes per 5-minute period).
	HostdDivergence       bool
	DivergenceSensitivity float64
	DivergenceMinBytes    uint64
	DivergencePeriods     int
	DivergenceDays        int
}

// DefaultHTTPListen is on loopback, on a port no Sia daemon uses (hostd,
// renterd and walletd take 9980-9984).
const DefaultHTTPListen = "127.0.0.1:9986"

type setting struct {
	env, def, help string
	set            func(c *Config, v string) error
}

// secrets are the settings whose values may hold a token: errors name
// them without their value.
var secrets = map[string]bool{"ALERT_WEBHOOK_URL": true, "ALERT_WEBHOOK_TOKEN": true, "SYNC_POSTGRES_URL": true, "HOSTD_API_PASSWORD": true,
	"SYNC_HTTP_URL": true, "SYNC_HTTP_TOKEN": true}

var settings = []setting{
	{"INTERFACE", "", "network interfaces to watch, comma-separated; empty: the interface of the default route", func(c *Config, v string) error {
		c.Interfaces = nil
		for _, name := range splitList(v) {
			if len(name) > 15 || strings.ContainsAny(name, "/ ") {
				return fmt.Errorf("%q is not an interface name; accepted: names as `ip -br link` shows them, comma-separated", name)
			}
			c.Interfaces = append(c.Interfaces, name)
		}
		return nil
	}},
	{"SQLITE_PATH", "/var/lib/collector/collector.db", "SQLite database the counters are stored in", func(c *Config, v string) error {
		if v == "" {
			return errors.New("empty; accepted: a file path")
		}
		c.SQLitePath = v
		return nil
	}},
	{"PORT_SIA_CONSENSUS", "9981", "TCP ports of the consensus (syncer) class, comma-separated", portList(func(c *Config) *[]uint16 { return &c.Ports.Consensus })},
	{"PORT_RHP4_SIAMUX", "9984", "TCP ports of RHP4 over siamux, comma-separated", portList(func(c *Config) *[]uint16 { return &c.Ports.Siamux })},
	{"PORT_RHP4_QUIC", "9984", "UDP ports of RHP4 over QUIC, comma-separated", portList(func(c *Config) *[]uint16 { return &c.Ports.QUIC })},
	{"PINNED_MAPS", "0", "1 pins maps under PIN_PATH so counting goes on while the daemon restarts", func(c *Config, v string) (err error) {
		c.Pinned, err = parseBool(v)
		return err
	}},
	{"PIN_PATH", bpfgo.DefaultPinPath, "bpffs directory for pinned maps", func(c *Config, v string) error {
		if !strings.HasPrefix(v, "/") {
			return errors.New("not an absolute path; accepted: a directory on a bpffs such as /sys/fs/bpf/collector")
		}
		c.PinPath = v
		return nil
	}},
	{"FLUSH_INTERVAL", "1m", "how often counters are written to SQLite, on wall-clock boundaries: " + acceptedFlushIntervals, func(c *Config, v string) (err error) {
		c.FlushInterval, err = parseFlushInterval(v)
		return err
	}},
	{"LIVE_INTERVAL", "30s", "how often live counters are printed to the journal; 0 turns it off", func(c *Config, v string) (err error) {
		if v == "0" {
			c.LiveInterval = 0
			return nil
		}
		c.LiveInterval, err = parseDuration(v, time.Second)
		return err
	}},
	{"XDP_MODE", string(bpfgo.XDPAuto), "ingress attach mode: auto (native, else tc), native, generic, tc (no XDP: a TC ingress program, which keeps GRO on)", func(c *Config, v string) error {
		switch m := bpfgo.XDPMode(v); m {
		case bpfgo.XDPAuto, bpfgo.XDPNative, bpfgo.XDPGeneric, bpfgo.XDPViaTC:
			c.XDPMode = m
			return nil
		}
		return errors.New("unknown mode; accepted: auto, native, generic, tc")
	}},
	{"TC_MODE", string(bpfgo.TCAuto), "egress attach mode: auto (tcx, else legacy), tcx, legacy (clsact qdisc + cls_bpf filter)", func(c *Config, v string) error {
		switch m := bpfgo.TCMode(v); m {
		case bpfgo.TCAuto, bpfgo.TCX, bpfgo.TCLegacy:
			c.TCMode = m
			return nil
		}
		return errors.New("unknown mode; accepted: auto, tcx, legacy")
	}},
	{"MAX_CLIENTS", strconv.Itoa(bpfgo.DefaultMaxClients), "client addresses counted per flush before the rest is counted as 'other'", func(c *Config, v string) error {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n < 1 || n > 1<<24 {
			return errors.New("not a count; accepted: 1 to 16777216")
		}
		c.MaxClients = uint32(n)
		return nil
	}},
	{"MIN_CLIENT_BYTES", "0", "bytes a client moves in a flush period to get a row of its own, less is stored as 'other'; 0 gives every client a row (MAX_CLIENT_ROWS bounds them under a flood)", func(c *Config, v string) error {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n > 1<<30 {
			return errors.New("not a byte count; accepted: 0 to 1073741824")
		}
		c.MinClientBytes = n
		return nil
	}},
	{"MAX_CLIENT_ROWS", strconv.Itoa(agg.DefaultMaxClientRows), "client rows a flush period, an hour and a day store at most, beside 'other'; past it clients proven real keep theirs first, then the busiest, the rest is stored as 'other'", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1<<24 {
			return errors.New("not a count; accepted: 1 to 16777216")
		}
		c.MaxClientRows = n
		return nil
	}},
	{"REVERSE_DNS", "1", "1 looks up host names of clients in the background for the dns column", func(c *Config, v string) (err error) {
		c.ReverseDNS, err = parseBool(v)
		return err
	}},
	{"RETENTION_MINUTES_DAYS", strconv.Itoa(int(store.DefaultMinuteRetention / day)), "days minute rows are kept; older traffic stays in hourly and daily rollups", days(1, func(c *Config) *time.Duration { return &c.MinuteRetention })},
	{"RETENTION_HOURLY_DAYS", strconv.Itoa(int(store.DefaultHourlyRetention / day)), "days hourly rollups are kept; daily rollups are kept forever", days(1, func(c *Config) *time.Duration { return &c.HourlyRetention })},
	{"PENDING_MAX_ROWS", strconv.Itoa(agg.DefaultMaxPending), "rows kept in memory while the database cannot be written; past it they are merged into hours, then days", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 || n > 100_000_000 {
			return errors.New("not a count; accepted: 1000 to 100000000")
		}
		c.MaxPendingRows = n
		return nil
	}},
	{"HTTP_LISTEN", DefaultHTTPListen, "address of the read-only HTTP server: /metrics, /api/v1/ and the dashboard; empty turns it off", func(c *Config, v string) error {
		if v != "" {
			host, port, err := net.SplitHostPort(v)
			if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 || strings.ContainsAny(host, "/ ") {
				return errors.New("not an address; accepted: host:port such as 127.0.0.1:9986 or [::1]:9986 or :9986, or empty for no HTTP server")
			}
		}
		c.HTTPListen = v
		return nil
	}},
	{"WEB_CONFIG_FILE", "", "Prometheus web configuration file (TLS, basic auth) for the HTTP server; empty: plain HTTP", func(c *Config, v string) error {
		c.WebConfigFile = v
		return nil
	}},
	{"HTTP_ALLOWED_HOSTS", "", "host names the HTTP server answers to besides HTTP_LISTEN's and loopback's (localhost, 127.0.0.1, ::1), comma-separated: those a reverse proxy or a browser uses for it; any other Host gets 421", func(c *Config, v string) error {
		c.HTTPAllowedHosts = nil
		for _, host := range splitList(v) {
			if !isHostName(host) {
				return fmt.Errorf("%q is not a host name; accepted: names or IP addresses without a port, comma-separated, such as collector.example.net", host)
			}
			c.HTTPAllowedHosts = append(c.HTTPAllowedHosts, host)
		}
		return nil
	}},
	{"METRICS_TOP_CLIENTS", "20", "clients of the last flush period with series of their own in /metrics, beside other; 0 gives none", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1000 {
			return errors.New("not a count; accepted: 0 to 1000")
		}
		c.MetricsTopClients = n
		return nil
	}},
	{"BILLING_DAY", "1", "day of the month billing periods start on, for the metrics, the API and the dashboard", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 31 {
			return errors.New("not a day; accepted: 1 to 31 (a shorter month starts on its last day)")
		}
		c.BillingDay = n
		return nil
	}},
	{"ALERT_SPIKES", "1", "1 alerts on consensus traffic far above its usual rate for the hour, for the host and per client", func(c *Config, v string) (err error) {
		c.SpikeAlerts, err = parseBool(v)
		return err
	}},
	{"ALERT_SPIKE_SENSITIVITY", strconv.Itoa(alert.DefaultSensitivity), "spreads (MADs) above the hour's usual rate consensus traffic must be to alert; lower alerts on smaller spikes", func(c *Config, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 1 || f > 100 {
			return errors.New("not a sensitivity; accepted: 1 to 100")
		}
		c.SpikeSensitivity = f
		return nil
	}},
	{"ALERT_SPIKE_MIN_RATE", strconv.Itoa(alert.DefaultMinRate), "bytes a second consensus traffic must exceed to alert, whatever its usual rate", func(c *Config, v string) error {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n < 1 {
			return errors.New("not a rate; accepted: bytes a second, 1 or more")
		}
		c.SpikeMinRate = float64(n)
		return nil
	}},
	{"ALERT_SPIKE_DAYS", strconv.Itoa(alert.DefaultDays), "days of stored history the usual rates are learned from (at most RETENTION_MINUTES_DAYS)", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 3 || n > 90 {
			return errors.New("not a number of days; accepted: 3 to 90")
		}
		c.SpikeDays = n
		return nil
	}},
	{"QUOTA_UP_BYTES", "0", "bytes the host may send per billing period, all classes; 0: no quota", byteCount(func(c *Config) *uint64 { return &c.QuotaUp }, "0 for no quota")},
	{"QUOTA_DOWN_BYTES", "0", "bytes the host may receive per billing period; 0: no quota", byteCount(func(c *Config) *uint64 { return &c.QuotaDown }, "0 for no quota")},
	{"QUOTA_TOTAL_BYTES", "0", "bytes sent and received per billing period; 0: no quota", byteCount(func(c *Config) *uint64 { return &c.QuotaTotal }, "0 for no quota")},
	{"QUOTA_THRESHOLDS", "80,100", "percentages of a quota that alert, once each per billing period, comma-separated", func(c *Config, v string) error {
		c.QuotaThresholds = nil
		for _, f := range splitList(v) {
			n, err := strconv.ParseFloat(f, 64)
			if err != nil || n <= 0 || n > 1000 {
				return errors.New("not a list of percentages; accepted: numbers above 0 up to 1000, comma-separated, such as 80,100")
			}
			c.QuotaThresholds = append(c.QuotaThresholds, n/100)
		}
		return nil
	}},
	{"QUOTA_ON_PROJECTION", "0", "1 alerts on QUOTA_THRESHOLDS when the billing period's projection to its end crosses them too, from the period's second day on", func(c *Config, v string) (err error) {
		c.QuotaOnProjection, err = parseBool(v)
		return err
	}},
	{"EGRESS_COST_PER_TB", "0", "what the provider charges per TB (10^12 bytes) the host sends beyond EGRESS_FREE_BYTES, in the operator's currency; 0: no cost", decimal(func(c *Config) *float64 { return &c.Egress.PerTB },
		"not a price; accepted: a decimal number of the operator's currency per TB such as 1.25, 0 for no cost")},
	{"EGRESS_FREE_BYTES", "0", "bytes the provider lets the host send free per billing period", byteCount(func(c *Config) *uint64 { return &c.Egress.FreeBytes }, "0 for no allowance")},
	{"SIACOIN_PRICE", "0", "one siacoin in EGRESS_COST_PER_TB's currency, for the margin of egress at hostd's price (1 when EGRESS_COST_PER_TB is in siacoins); 0: margin unknown", decimal(func(c *Config) *float64 { return &c.Egress.SiacoinPrice },
		"not a price; accepted: a decimal number of EGRESS_COST_PER_TB's currency per siacoin such as 0.004, 0 for unknown")},
	{"ALERT_WEBHOOK_URL", "", "http(s) URL every alert is POSTed to as JSON, firing and resolved; empty: none", func(c *Config, v string) error {
		if v != "" {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return errors.New("not a URL; accepted: an http:// or https:// URL, or empty")
			}
		}
		c.WebhookURL = v
		return nil
	}},
	{"ALERT_WEBHOOK_TOKEN", "", "sent to ALERT_WEBHOOK_URL as Authorization: Bearer; empty: none", func(c *Config, v string) error {
		c.WebhookToken = v
		return nil
	}},
	{"SYNC_POSTGRES_URL", "", "PostgreSQL URL every stored row is copied to, for one view of many hosts (postgres://user:password@host:5432/db); empty: no sync", func(c *Config, v string) error {
		c.SyncURL = v
		return nil
	}},
	{"HOST_ID", "", "this host's name in the central PostgreSQL and at SYNC_HTTP_URL; empty: /etc/machine-id, else the host name", func(c *Config, v string) error {
		if len(v) > 128 || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r > '~' }) {
			return errors.New("not a host id; accepted: up to 128 printable ASCII characters, or empty")
		}
		c.HostID = v
		return nil
	}},
	{"SYNC_INTERVAL", "1m", "time between syncs to SYNC_POSTGRES_URL and SYNC_HTTP_URL besides the one after each flush", func(c *Config, v string) (err error) {
		c.SyncInterval, err = parseDuration(v, time.Second)
		return err
	}},
	{"HOSTD_API_URL", hostd.DefaultURL, "hostd's API, read for hostd's own figures when HOSTD_API_PASSWORD is set", func(c *Config, v string) error {
		if _, err := hostd.New(v, ""); err != nil {
			return errors.New("not hostd's API address; accepted: http(s)://host:port/api without a user or password, e.g. " + hostd.DefaultURL)
		}
		c.HostdURL = v
		return nil
	}},
	{"HOSTD_API_PASSWORD", "", "hostd's API password (http.password in hostd.yml, or HOSTD_API_PASSWORD of hostd); empty: hostd is not read", func(c *Config, v string) error {
		c.HostdPassword = v
		return nil
	}},
	{"SYNC_HTTP_URL", "", "HTTPS endpoint every stored row of SYNC_HTTP_TABLES is POSTed to as JSON (http only to loopback); empty: no HTTP sync", func(c *Config, v string) error {
		if v != "" {
			if _, err := httpsync.ParseURL(v); err != nil {
				return err
			}
		}
		c.SyncHTTPURL = v
		return nil
	}},
	{"SYNC_HTTP_TOKEN", "", "sent to SYNC_HTTP_URL as Authorization: Bearer; empty: none", func(c *Config, v string) error {
		c.SyncHTTPToken = v
		return nil
	}},
	{"SYNC_HTTP_TABLES", "hourly,daily", "tables sent to SYNC_HTTP_URL, comma-separated: minute, hourly, daily", tableList(func(c *Config) *[]store.Table { return &c.SyncHTTPTables })},
	{"SYNC_HTTP_TIMEOUT", "30s", "time one request to SYNC_HTTP_URL may take, its answer included", func(c *Config, v string) (err error) {
		c.SyncHTTPTimeout, err = parseDuration(v, time.Second)
		return err
	}},
	{"SYNC_POSTGRES_TABLES", "minute,hourly,daily", "tables copied to SYNC_POSTGRES_URL, comma-separated: minute, hourly, daily", tableList(func(c *Config) *[]store.Table { return &c.SyncTables })},
	{"SYNC_POSTGRES_PARTITIONS", "manage", "manage: the collector makes the central tables' daily partitions ahead and drops those past retention; use: it only uses those the operator makes", func(c *Config, v string) error {
		switch v {
		case "manage":
			c.SyncPartitions = pgsync.ManagePartitions
		case "use":
			c.SyncPartitions = pgsync.UsePartitions
		default:
			return errors.New("unknown mode; accepted: manage, use")
		}
		return nil
	}},
	{"SYNC_POSTGRES_RETENTION_MINUTES_DAYS", "0", "days the central database keeps minute rows, whole daily partitions; 0: forever", days(0, func(c *Config) *time.Duration { return &c.SyncRetention.Minutes })},
	{"SYNC_POSTGRES_RETENTION_HOURLY_DAYS", "0", "days the central database keeps hourly rows, whole daily partitions; 0: forever", days(0, func(c *Config) *time.Duration { return &c.SyncRetention.Hourly })},
	{"HOSTD_POLL_INTERVAL", "2m", "time between reads of hostd's metrics; each read takes at most this long, and 30s at most", func(c *Config, v string) (err error) {
		c.HostdInterval, err = parseDuration(v, time.Second)
		return err
	}},
	{"ALERT_HOSTD_DIVERGENCE", "1", "1 alerts, while hostd is read, when the RHP bytes on the wire leave their usual ratio to the RHP payload hostd counts", func(c *Config, v string) (err error) {
		c.HostdDivergence, err = parseBool(v)
		return err
	}},
	{"ALERT_HOSTD_DIVERGENCE_SENSITIVITY", strconv.Itoa(alert.DefaultDivergenceSensitivity), "spreads (MADs of the log ratio) off the usual ratio of wire to hostd's RHP bytes a period must be to count as out of band", func(c *Config, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 1 || f > 100 {
			return errors.New("not a sensitivity; accepted: 1 to 100")
		}
		c.DivergenceSensitivity = f
		return nil
	}},
	{"ALERT_HOSTD_DIVERGENCE_MIN_BYTES", strconv.Itoa(alert.DefaultDivergenceMinBytes), "RHP bytes a 5-minute period must move, on the wire or in hostd's count, to be judged", func(c *Config, v string) error {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n < 1 {
			return errors.New("not a byte count; accepted: a whole number of bytes, 1 or more")
		}
		c.DivergenceMinBytes = n
		return nil
	}},
	{"ALERT_HOSTD_DIVERGENCE_PERIODS", strconv.Itoa(alert.DefaultDivergencePeriods), "5-minute periods in a row out of band that fire the divergence alert, and in band that resolve it", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 288 {
			return errors.New("not a number of periods; accepted: 1 to 288 (a day)")
		}
		c.DivergencePeriods = n
		return nil
	}},
	{"ALERT_HOSTD_DIVERGENCE_DAYS", strconv.Itoa(alert.DefaultDays), "days of stored history the usual ratio of wire to hostd's RHP bytes is learned from (at most RETENTION_MINUTES_DAYS)", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 90 {
			return errors.New("not a number of days; accepted: 1 to 90")
		}
		c.DivergenceDays = n
		return nil
	}},
	{"LOG_LEVEL", "info", "debug, info, warn or error", func(c *Config, v string) error {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return errors.New("unknown level; accepted: debug, info, warn, error")
		}
		return nil
	}},
}

// Load builds the configuration from args (without the program name and
// subcommand), the env file and getenv (os.LookupEnv in the daemon). A
// missing env file is fine at the default path but an error when -config
// names it. Errors are one line naming the setting and what it accepts.
func Load(name string, args []string, getenv func(string) (string, bool), usage io.Writer) (*Config, error) {
	fl := flag.NewFlagSet(name, flag.ContinueOnError)
	fl.SetOutput(usage)
	file := fl.String("config", DefaultFile, "env file with the settings below")
	flags := make(map[string]*string, len(settings))
	for _, s := range settings {
		flags[s.env] = fl.String(flagName(s.env), "", fmt.Sprintf("%s (env %s, default %q)", s.help, s.env, s.def))
	}
	if err := fl.Parse(args); err != nil {
		return nil, err
	}
	if fl.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q; settings are flags such as -interface eth0", fl.Arg(0))
	}
	explicitFile := false
	fl.Visit(func(f *flag.Flag) { explicitFile = explicitFile || f.Name == "config" })

	fromFile, err := readEnvFile(*file, explicitFile)
	if err != nil {
		return nil, err
	}
	setFlags := map[string]bool{}
	fl.Visit(func(f *flag.Flag) { setFlags[f.Name] = true })

	c := &Config{}
	for _, s := range settings {
		v, where := s.value(fromFile, *file, getenv)
		if setFlags[flagName(s.env)] {
			v, where = *flags[s.env], "flag -"+flagName(s.env)
		}
		if err := s.apply(c, v, where); err != nil {
			return nil, err
		}
	}
	if err := c.Ports.Validate(); err != nil {
		return nil, fmt.Errorf("PORT_SIA_CONSENSUS, PORT_RHP4_SIAMUX: %w", err)
	}
	if c.QuotaOnProjection && c.QuotaUp == 0 && c.QuotaDown == 0 && c.QuotaTotal == 0 {
		return nil, errors.New("QUOTA_ON_PROJECTION=1 alerts on a quota, and none is set; accepted: with QUOTA_UP_BYTES, QUOTA_DOWN_BYTES or QUOTA_TOTAL_BYTES above 0")
	}
	if c.HourlyRetention < c.MinuteRetention {
		return nil, fmt.Errorf("RETENTION_HOURLY_DAYS, RETENTION_MINUTES_DAYS: hourly rows kept %v, minute rows %v; accepted: hourly rows kept at least as long", c.HourlyRetention, c.MinuteRetention)
	}
	if err := checkCentralRetention(c); err != nil {
		return nil, err
	}
	return c, nil
}

// checkCentralRetention refuses a central retention shorter than the
// local one: the central side would drop rows the host still keeps, and
// sync -verify would find them missing.
func checkCentralRetention(c *Config) error {
	for _, r := range []struct {
		central, local string
		keep, kept     time.Duration
	}{
		{"SYNC_POSTGRES_RETENTION_MINUTES_DAYS", "RETENTION_MINUTES_DAYS", c.SyncRetention.Minutes, c.MinuteRetention},
		{"SYNC_POSTGRES_RETENTION_HOURLY_DAYS", "RETENTION_HOURLY_DAYS", c.SyncRetention.Hourly, c.HourlyRetention},
	} {
		if r.keep != 0 && r.keep < r.kept {
			return fmt.Errorf("%s=%d is shorter than %s=%d; accepted: 0 (forever) or at least %[4]d",
				r.central, r.keep/day, r.local, r.kept/day)
		}
	}
	return nil
}

// readerSettings are the settings that commands reading the database
// share with the daemon: where it is, and the quotas and egress prices a
// billing report shows.
var readerSettings = []string{"SQLITE_PATH", "QUOTA_UP_BYTES", "QUOTA_DOWN_BYTES", "QUOTA_TOTAL_BYTES",
	"EGRESS_COST_PER_TB", "EGRESS_FREE_BYTES", "SIACOIN_PRICE"}

// ForReaders returns the readerSettings for commands that only read the
// database: from getenv, else from the env file (file, or DefaultFile
// when file is "", which may then be missing), else the defaults. Such
// commands put their own flags on top.
func ForReaders(file string, getenv func(string) (string, bool)) (*Config, error) {
	explicit := file != ""
	if !explicit {
		file = DefaultFile
	}
	fromFile, err := readEnvFile(file, explicit)
	if err != nil {
		return nil, err
	}
	c := &Config{}
	for _, s := range settings {
		if slices.Contains(readerSettings, s.env) {
			v, where := s.value(fromFile, file, getenv)
			if err := s.apply(c, v, where); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// value returns the setting's value and where it came from: the default,
// overridden by the env file, overridden by the environment.
func (s setting) value(fromFile map[string]string, file string, getenv func(string) (string, bool)) (v, where string) {
	v, where = s.def, "default"
	if fv, ok := fromFile[s.env]; ok {
		v, where = fv, file
	}
	if ev, ok := getenv(s.env); ok {
		v, where = ev, "environment"
	}
	return v, where
}

// apply sets v in c, with an error naming the setting, the value (unless
// it is a secret) and where it came from.
func (s setting) apply(c *Config, v, where string) error {
	err := s.set(c, strings.TrimSpace(v))
	switch {
	case err != nil && secrets[s.env]:
		return fmt.Errorf("%s (from %s): %w", s.env, where, err)
	case err != nil:
		return fmt.Errorf("%s=%q (from %s): %w", s.env, v, where, err)
	}
	return nil
}

func readEnvFile(path string, explicit bool) (map[string]string, error) {
	env, err := godotenv.Read(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read env file %s: %w", path, err)
	}
	return env, nil
}

// flagName turns PORT_SIA_CONSENSUS into port-sia-consensus.
func flagName(env string) string {
	return strings.ToLower(strings.ReplaceAll(env, "_", "-"))
}

// syncTables are the tables a sync can send, by the names settings give
// them.
var syncTables = map[string]store.Table{"minute": store.Minutes, "hourly": store.Hours, "daily": store.Days}

// tableList parses a comma-separated list of syncTables' names, at least
// one, each once, into the field field returns.
func tableList(field func(c *Config) *[]store.Table) func(c *Config, v string) error {
	return func(c *Config, v string) error {
		var tables []store.Table
		for _, name := range splitList(v) {
			t, ok := syncTables[strings.ToLower(name)]
			if !ok || slices.Contains(tables, t) {
				tables = nil
				break
			}
			tables = append(tables, t)
		}
		if len(tables) == 0 {
			return errors.New("not a list of tables; accepted: one or more of minute, hourly, daily, comma-separated, each once")
		}
		*field(c) = tables
		return nil
	}
}

func splitList(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// isHostName reports whether v is a DNS name or an IP address, without a
// port.
func isHostName(v string) bool {
	if _, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")); err == nil {
		return true
	}
	return len(v) <= 253 && !strings.ContainsFunc(v, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_')
	})
}

func portList(field func(*Config) *[]uint16) func(*Config, string) error {
	return func(c *Config, v string) error {
		ports := field(c)
		*ports = nil
		for _, f := range splitList(v) {
			p, err := strconv.ParseUint(f, 10, 16)
			if err != nil || p == 0 {
				return fmt.Errorf("%q is not a port; accepted: ports 1-65535, comma-separated", f)
			}
			*ports = append(*ports, uint16(p))
		}
		if len(*ports) == 0 {
			return errors.New("no port; accepted: ports 1-65535, comma-separated")
		}
		return nil
	}
}

const day = 24 * time.Hour

// days parses a number of days, from least to 36500; a least of 0
// takes 0 for forever.
func days(least int, field func(*Config) *time.Duration) func(*Config, string) error {
	accepted := "1 to 36500"
	if least == 0 {
		accepted = "0 (forever) or 1 to 36500"
	}
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < least || n > 36500 {
			return errors.New("not a number of days; accepted: " + accepted)
		}
		*field(c) = time.Duration(n) * day
		return nil
	}
}

// byteCount parses a whole number of bytes, such as a quota; zero says
// what 0 means.
func byteCount(field func(*Config) *uint64, zero string) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return errors.New("not a byte count; accepted: a whole number of bytes, " + zero)
		}
		*field(c) = n
		return nil
	}
}

// decimal parses a price: a finite decimal number, 0 or more; empty is 0.
// accepted is the error.
func decimal(field func(*Config) *float64, accepted string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v == "" {
			v = "0"
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return errors.New(accepted)
		}
		*field(c) = f
		return nil
	}
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off", "":
		return false, nil
	}
	return false, errors.New("not a switch; accepted: 1 or 0 (true/false, yes/no)")
}

// flushIntervals are the flush intervals that tile a minute, and so
// hours, days and billing periods: a flush period never straddles a
// minute, the unit of the stored rows, nor the end of a day or a period,
// and the spike detector's steps stay whole minutes.
var flushIntervals = []time.Duration{
	1 * time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second, 5 * time.Second, 6 * time.Second,
	10 * time.Second, 12 * time.Second, 15 * time.Second, 20 * time.Second, 30 * time.Second, time.Minute,
}

// acceptedFlushIntervals spells flushIntervals for the help and errors.
const acceptedFlushIntervals = "1s, 2s, 3s, 4s, 5s, 6s, 10s, 12s, 15s, 20s, 30s or 1m"

func parseFlushInterval(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || !slices.Contains(flushIntervals, d) {
		return 0, errors.New("not an interval that tiles a minute; accepted: " + acceptedFlushIntervals)
	}
	return d, nil
}

func parseDuration(v string, minimum time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < minimum {
		return 0, fmt.Errorf("not a duration; accepted: %v or longer, such as 30s or 1m", minimum)
	}
	return d, nil
}
