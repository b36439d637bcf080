package web

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/billing"
	"github.com/back2basic/collector/traffic"
)

// serve starts s and runs it until the test ends, and returns its URL's
// scheme and host.
func serve(t *testing.T, s *Server, scheme string) string {
	t.Helper()
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return scheme + "://" + s.listener.Addr().String()
}

// status sends a GET for url with client, with basic auth when user is
// not empty, and returns the status.
func status(t *testing.T, client *http.Client, url, user, password string) int {
	t.Helper()
	code, err := fetch(t.Context(), client, url, user, password)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func fetch(ctx context.Context, client *http.Client, url, user, password string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Run serves until its context is done, lets the request in flight
// finish, returns, and frees the port.
func TestRunShutsDownWithContext(t *testing.T) {
	cfg := testConfig(t)
	entered, release := make(chan struct{}), make(chan struct{})
	cfg.Live = func() (traffic.OpenPeriod, error) {
		close(entered)
		<-release
		return traffic.OpenPeriod{Since: flushedAt}, nil
	}
	s := newServer(t, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	addr := s.listener.Addr().String()
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()

	answered := make(chan error, 1)
	go func() {
		code, err := fetch(t.Context(), http.DefaultClient, "http://"+addr+"/api/v1/live", "", "")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d, want 200", code)
		}
		answered <- err
	}()
	<-entered
	cancel()
	select {
	case err := <-ran:
		t.Fatalf("Run returned %v with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-answered; err != nil {
		t.Errorf("the request in flight: %v", err)
	}
	select {
	case err := <-ran:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(shutdownTimeout):
		t.Fatal("Run did not return after the request")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the port is still taken: %v", err)
	}
	l.Close()
}

// A server without a billing calendar is refused, naming the setting:
// /api/v1/billing and the reports' billing periods need one.
func TestNewNeedsBilling(t *testing.T) {
	cfg := testConfig(t)
	cfg.Billing = billing.Cycle{}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "BILLING_DAY") {
		t.Errorf("New without a billing calendar: %v, want an error naming BILLING_DAY", err)
	}
}

// A port in use fails the start, with the setting to change.
func TestStartPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := testConfig(t)
	cfg.Listen = l.Addr().String()
	err = newServer(t, cfg).Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), "HTTP_LISTEN") {
		t.Errorf("Start: %v, want the port in use and HTTP_LISTEN", err)
	}
}

// Listening beyond loopback without a web configuration file warns.
func TestStartWarnsBeyondLoopback(t *testing.T) {
	authOnly := filepath.Join("testdata", "web-config-basic-auth.yml")
	tests := []struct {
		listen, webConfig string
		warn              bool
	}{
		{"127.0.0.1:0", "", false},
		{"[::1]:0", "", false},
		{"localhost:0", "", false},
		{":0", "", true},
		{":0", authOnly, false},
	}
	for _, tt := range tests {
		t.Run(tt.listen+" "+tt.webConfig, func(t *testing.T) {
			var journal bytes.Buffer
			cfg := testConfig(t)
			cfg.Listen, cfg.WebConfigFile = tt.listen, tt.webConfig
			cfg.Log = slog.New(slog.NewTextHandler(&journal, nil))
			s := newServer(t, cfg)
			if err := s.Start(t.Context()); err != nil {
				t.Skipf("no %s here: %v", tt.listen, err)
			}
			s.listener.Close()
			if got := strings.Contains(journal.String(), "level=WARN"); got != tt.warn {
				t.Errorf("warned %v, want %v:\n%s", got, tt.warn, journal.String())
			}
		})
	}
}

// A web configuration file that cannot be used fails the start.
func TestStartBadWebConfig(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "web-config.yml")
	if err := os.WriteFile(bad, []byte("basic_auth_users:\n  alice: not-a-hash\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{filepath.Join(t.TempDir(), "missing.yml"), bad} {
		cfg := testConfig(t)
		cfg.WebConfigFile = file
		err := newServer(t, cfg).Start(t.Context())
		if err == nil || !strings.Contains(err.Error(), "WEB_CONFIG_FILE") {
			t.Errorf("%s: Start: %v, want an error naming WEB_CONFIG_FILE", file, err)
		}
	}
}

// basic_auth_users of the web configuration file guard every path.
func TestBasicAuth(t *testing.T) {
	cfg := testConfig(t)
	cfg.WebConfigFile = filepath.Join("testdata", "web-config-basic-auth.yml")
	base := serve(t, newServer(t, cfg), "http")
	tests := []struct {
		path, user, password string
		want                 int
	}{
		{"/api/v1/", "", "", http.StatusUnauthorized},
		{"/metrics", "", "", http.StatusUnauthorized},
		{"/api/v1/", "alice", "wrong", http.StatusUnauthorized},
		{"/api/v1/", "mallory", "correct horse", http.StatusUnauthorized},
		{"/api/v1/", "alice", "correct horse", http.StatusOK},
		{"/metrics", "alice", "correct horse", http.StatusOK},
	}
	for _, tt := range tests {
		if got := status(t, http.DefaultClient, base+tt.path, tt.user, tt.password); got != tt.want {
			t.Errorf("%s as %q/%q: %d, want %d", tt.path, tt.user, tt.password, got, tt.want)
		}
	}
}

// tls_server_config of the web configuration file serves HTTPS.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	cert := selfSigned(t, dir)
	base, client := serveHTTPS(t, dir, cert, []byte("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n"))
	if got := status(t, client, base+"/api/v1/billing", "", ""); got != http.StatusOK {
		t.Errorf("over HTTPS: %d, want 200", got)
	}
	if got := status(t, http.DefaultClient, strings.Replace(base, "https:", "http:", 1)+"/api/v1/billing", "", ""); got != http.StatusBadRequest {
		t.Errorf("plain HTTP to the HTTPS port: %d, want 400", got)
	}
}

// serveHTTPS serves the test configuration with the web configuration
// file config, written to dir beside cert's files, and returns its base
// URL and a client that trusts cert.
func serveHTTPS(t *testing.T, dir string, cert *x509.Certificate, config []byte) (string, *http.Client) {
	t.Helper()
	webConfig := filepath.Join(dir, "web-config.yml")
	if err := os.WriteFile(webConfig, config, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.WebConfigFile = webConfig
	base := serve(t, newServer(t, cfg), "https")
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	t.Cleanup(client.CloseIdleConnections)
	return base, client
}

// selfSigned writes cert.pem and key.pem for 127.0.0.1 to dir, and returns
// the certificate.
func selfSigned(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "collector test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"cert.pem": {Type: "CERTIFICATE", Bytes: der},
		"key.pem":  {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// contrib/web-config.yml, with a test certificate and password in place
// of its placeholders, serves HTTPS behind basic auth, and its headers
// put the server's own security headers on the 401 too.
func TestExampleWebConfig(t *testing.T) {
	example, err := os.ReadFile("../contrib/web-config.yml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert := selfSigned(t, dir)
	testHash, err := os.ReadFile(filepath.Join("testdata", "web-config-basic-auth.yml"))
	if err != nil {
		t.Fatal(err)
	}
	alice := regexp.MustCompile(`(?m)^  alice: .*$`).Find(testHash)
	config := bytes.ReplaceAll(example, []byte("/etc/collector/tls/"), []byte(dir+"/"))
	config = regexp.MustCompile(`(?m)^  prometheus: .*$`).ReplaceAllLiteral(config, alice)
	if bytes.Equal(config, example) || alice == nil {
		t.Fatal("the example's placeholders are not where the test looks for them")
	}
	base, client := serveHTTPS(t, dir, cert, config)
	for _, tt := range []struct {
		user, password string
		want           int
	}{
		{"", "", http.StatusUnauthorized},
		{"alice", "correct horse", http.StatusOK},
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/api/v1/billing", nil)
		if err != nil {
			t.Fatal(err)
		}
		if tt.user != "" {
			req.SetBasicAuth(tt.user, tt.password)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("as %q: %d, want %d", tt.user, resp.StatusCode, tt.want)
		}
		for name, want := range securityHeaders {
			if name == "Referrer-Policy" && resp.StatusCode == http.StatusUnauthorized {
				continue // not one exporter-toolkit can set
			}
			if got := resp.Header.Get(name); !strings.EqualFold(got, want) {
				t.Errorf("%d answer: %s %q, want %q", resp.StatusCode, name, got, want)
			}
		}
	}
}
