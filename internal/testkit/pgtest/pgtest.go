// Package pgtest runs throwaway PostgreSQL servers for tests: the server
// of Debian's postgresql package, started from a temporary directory,
// listening on 127.0.0.1 only, on a free port, and removed when the test
// ends. Tests stop, kill, restart and pause it to play the outages a
// central database has.
//
// Without postgresql installed a test skips, except in CI (CI set), where
// it fails: CI must run them.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// User is the role tests connect as: not a superuser, and logging in with
// a password over TCP, as a collector would.
const User = "collector"

// startTimeout bounds how long a server takes to accept connections.
const startTimeout = 30 * time.Second

// Server is a PostgreSQL server of one test.
type Server struct {
	tb       testing.TB
	bin      string // the directory of initdb and postgres
	dir      string // holds the data directory, the socket and the log
	port     int
	password string
	cred     *syscall.Credential // the postgres user's, when run as root

	proc   *os.Process // the postmaster, leader of its process group
	exited chan struct{}
	paused bool
}

// New starts a server for tb with a role User that owns nothing yet, and
// removes it when tb ends.
func New(tb testing.TB) *Server {
	tb.Helper()
	bin, err := findBin()
	if err != nil {
		unavailable(tb, err.Error())
	}
	s := &Server{tb: tb, bin: bin, password: randomHex(tb)}
	if os.Geteuid() == 0 {
		// initdb refuses root; the package's own user runs the server.
		if s.cred, err = postgresUser(); err != nil {
			unavailable(tb, err.Error())
		}
	}
	// Not tb.TempDir: its parent is private to this user, where the
	// postgres user must reach the data directory.
	if s.dir, err = os.MkdirTemp("", "pgtest-"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.remove)
	if s.cred != nil {
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			tb.Fatal(err)
		}
	}
	s.initdb()
	s.port = freePort(tb)
	s.Start()
	s.Exec("postgres", fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", User, s.password))
	return s
}

// unavailable skips tb, or fails it in CI, for want of PostgreSQL.
func unavailable(tb testing.TB, why string) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatalf("%s, and CI must not skip the PostgreSQL tests (apt-get install postgresql)", why)
	}
	tb.Skipf("%s (apt-get install postgresql to run this test)", why)
}

// findBin returns the directory of the newest installed server's
// binaries: Debian keeps them out of PATH, by major version.
func findBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("no PostgreSQL server installed (looked in /usr/lib/postgresql/*/bin and PATH)")
}

func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and no postgres user to run the server as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func randomHex(tb testing.TB) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// freePort returns a TCP port of 127.0.0.1 free right now.
func freePort(tb testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// command runs one of the server's binaries as the server's user.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	// Not in the test's process group, so that ^C in a terminal leaves
	// the cleanup to the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true}
	return cmd
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

func (s *Server) logPath() string { return filepath.Join(s.dir, "server.log") }

// initdb creates the cluster: the superuser postgres trusted on the socket
// and from 127.0.0.1, every other role by password only.
func (s *Server) initdb() {
	s.tb.Helper()
	out, err := s.command("initdb", "-D", s.data(), "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-instructions").CombinedOutput()
	if err != nil {
		s.tb.Fatalf("initdb: %v\n%s", err, out)
	}
	hba := "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(s.data(), "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		s.tb.Fatal(err)
	}
	if s.cred != nil {
		if err := os.Chown(filepath.Join(s.data(), "pg_hba.conf"), int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			s.tb.Fatal(err)
		}
	}
}

// Start starts the server, stopped or new, and waits until it accepts
// connections. Its port stays the same, so URLs handed out stay good.
func (s *Server) Start() {
	s.tb.Helper()
	if s.proc != nil {
		s.tb.Fatal("pgtest: Start of a running server")
	}
	log, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o666)
	if err != nil {
		s.tb.Fatal(err)
	}
	defer log.Close()
	cmd := s.command("postgres", "-D", s.data(),
		"-c", "listen_addresses=127.0.0.1", "-c", "port="+strconv.Itoa(s.port),
		"-c", "unix_socket_directories="+s.dir,
		// A test's server loses nothing it needs when the machine
		// crashes: its data goes with the test.
		"-c", "fsync=off", "-c", "full_page_writes=off")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		s.tb.Fatalf("start postgres: %v", err)
	}
	s.proc, s.exited = cmd.Process, make(chan struct{})
	go func(exited chan struct{}) {
		cmd.Wait()
		close(exited)
	}(s.exited)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, s.adminURL("postgres"))
		if err == nil {
			conn.Close(ctx)
			return
		}
		select {
		case <-s.exited:
			s.proc = nil
			s.tb.Fatalf("postgres exited at start:\n%s", s.Log())
		case <-ctx.Done():
			s.tb.Fatalf("postgres does not accept connections after %v: %v\n%s", startTimeout, err, s.Log())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop shuts the server down as an operator would (fast shutdown: open
// transactions are rolled back) and waits until it has.
func (s *Server) Stop() {
	s.tb.Helper()
	s.end(syscall.SIGINT)
}

// Kill kills every process of the server at once, as a crash or the OOM
// killer would; the next Start recovers from the WAL.
func (s *Server) Kill() {
	s.tb.Helper()
	s.end(syscall.SIGKILL)
}

func (s *Server) end(sig syscall.Signal) {
	s.tb.Helper()
	if s.proc == nil {
		s.tb.Fatal("pgtest: stop of a stopped server")
	}
	s.Resume()
	if sig == syscall.SIGKILL {
		s.signalAll(sig)
	} else if err := syscall.Kill(s.proc.Pid, sig); err != nil {
		s.tb.Fatalf("signal postgres: %v", err)
	}
	select {
	case <-s.exited:
	case <-time.After(startTimeout):
		s.tb.Fatalf("postgres did not stop within %v", startTimeout)
	}
	s.proc = nil
}

// signalAll sends sig, SIGSTOP, SIGCONT or SIGKILL, to the postmaster and
// its children, the backends:
// each runs in a session of its own, out of reach of a signal to the
// postmaster's process group. The postmaster is stopped first, so that it
// starts no backend meanwhile, and its children are found while it lives:
// once it is gone they belong to init.
func (s *Server) signalAll(sig syscall.Signal) {
	s.tb.Helper()
	if err := syscall.Kill(s.proc.Pid, syscall.SIGSTOP); err != nil {
		s.tb.Fatalf("signal postgres: %v", err)
	}
	for _, pid := range children(s.proc.Pid) {
		syscall.Kill(pid, sig) // one may have exited meanwhile
	}
	if sig != syscall.SIGSTOP {
		syscall.Kill(s.proc.Pid, sig)
	}
}

// children returns the processes whose parent is pid.
func children(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// The fields after the command, which is in parentheses and
		// may hold spaces, are state and parent.
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			child, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
			out = append(out, child)
		}
	}
	return out
}

// Pause stops every process of the server where it is (SIGSTOP) until
// Resume: connections stay open and queries hang, as with a server
// swapping or a network dropping packets.
func (s *Server) Pause() {
	s.tb.Helper()
	if s.proc == nil || s.paused {
		return
	}
	s.signalAll(syscall.SIGSTOP)
	s.paused = true
}

// Resume lets a paused server go on.
func (s *Server) Resume() {
	s.tb.Helper()
	if s.proc == nil || !s.paused {
		return
	}
	s.signalAll(syscall.SIGCONT)
	s.paused = false
}

// Password is User's password.
func (s *Server) Password() string { return s.password }

// Port is the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// URL returns the URL a collector connects to database with, as User.
func (s *Server) URL(database string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(User, s.password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), Path: "/" + database, RawQuery: "sslmode=disable"}
	return u.String()
}

func (s *Server) adminURL(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, database)
}

// CreateDatabase creates a database owned by User and returns its URL.
func (s *Server) CreateDatabase(name string) string {
	s.tb.Helper()
	s.Exec("postgres", fmt.Sprintf("CREATE DATABASE %s OWNER %s", pgx.Identifier{name}.Sanitize(), User))
	return s.URL(name)
}

// Conn returns a connection to database as the superuser, closed when the
// test ends.
func (s *Server) Conn(database string) *pgx.Conn {
	s.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.adminURL(database))
	if err != nil {
		s.tb.Fatalf("connect to %s as postgres: %v", database, err)
	}
	s.tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// DropDatabase drops database, ending its connections, as an operator
// rebuilding the central database does.
func (s *Server) DropDatabase(name string) {
	s.tb.Helper()
	s.Exec("postgres", fmt.Sprintf("DROP DATABASE %s WITH (FORCE)", pgx.Identifier{name}.Sanitize()))
}

// Dump saves database with pg_dump, in its custom format, and returns the
// file's path, for Restore.
func (s *Server) Dump(database string) string {
	s.tb.Helper()
	path := filepath.Join(s.dir, fmt.Sprintf("%s-%s.dump", database, randomHex(s.tb)[:8]))
	s.run("pg_dump", "-h", "127.0.0.1", "-p", strconv.Itoa(s.port), "-U", "postgres", "-Fc", "-f", path, database)
	return path
}

// Restore drops database and creates it again, owned by User, from a
// file of Dump, as an operator restoring a backup does.
func (s *Server) Restore(database, dump string) {
	s.tb.Helper()
	s.DropDatabase(database)
	s.CreateDatabase(database)
	s.run("pg_restore", "-h", "127.0.0.1", "-p", strconv.Itoa(s.port), "-U", "postgres", "--exit-on-error", "-d", database, dump)
}

// run runs one of the server's client binaries and fails the test when
// it fails.
func (s *Server) run(name string, args ...string) {
	s.tb.Helper()
	if out, err := s.command(name, args...).CombinedOutput(); err != nil {
		s.tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// Exec runs sql in database as the superuser.
func (s *Server) Exec(database, sql string, args ...any) {
	s.tb.Helper()
	conn := s.Conn(database)
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		s.tb.Fatalf("%s: %v", sql, err)
	}
}

// Log returns what the server has logged.
func (s *Server) Log() string {
	b, err := os.ReadFile(s.logPath())
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(string(b))
}

// remove kills the server if it runs and deletes its files; the log goes
// to the test's when it failed.
func (s *Server) remove() {
	if s.proc != nil {
		s.Kill()
	}
	if s.tb.Failed() {
		s.tb.Logf("postgres log:\n%s", s.Log())
	}
	os.RemoveAll(s.dir)
}

// SocketURL is URL through the server's unix socket, which a process in
// another network namespace, such as a daemon in a lab, reaches as well.
func (s *Server) SocketURL(database string) string {
	q := url.Values{"host": {s.dir}, "port": {strconv.Itoa(s.port)}, "sslmode": {"disable"}}
	u := url.URL{Scheme: "postgres", User: url.UserPassword(User, s.password), Path: "/" + database, RawQuery: q.Encode()}
	return u.String()
}
