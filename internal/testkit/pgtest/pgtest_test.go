package pgtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ping reports whether url answers a query within a second.
func ping(t *testing.T, url string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

func TestServer(t *testing.T) {
	s := New(t)
	url := s.CreateDatabase("fleet")
	if err := ping(t, url); err != nil {
		t.Fatalf("connect as %s: %v", User, err)
	}
	if err := ping(t, strings.Replace(url, s.Password(), "wrong", 1)); err == nil {
		t.Error("a wrong password is accepted")
	}

	s.Pause()
	if err := ping(t, url); err == nil {
		t.Error("a paused server answers")
	}
	s.Resume()
	if err := ping(t, url); err != nil {
		t.Errorf("after Resume: %v", err)
	}

	s.Stop()
	if err := ping(t, url); err == nil {
		t.Error("a stopped server answers")
	}
	s.Start()
	if err := ping(t, url); err != nil {
		t.Errorf("after a restart: %v", err)
	}

	s.Exec("fleet", "CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
	s.Kill()
	s.Start()
	var n int
	if err := s.Conn("fleet").QueryRow(t.Context(), "SELECT n FROM kept").Scan(&n); err != nil || n != 7 {
		t.Errorf("after a crash: %d, %v; want the committed row, 7", n, err)
	}
}
