package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// writerLock is held by the one daemon that writes a database, for as
// long as it runs. A second daemon on the same SQLITE_PATH would roll the
// same hours up twice, and with XDP_MODE=tc, TCX or pinned maps nothing
// else stops it: its attach succeeds beside the first one's.
//
// It is a flock on SQLITE_PATH + ".lock", which the kernel releases when
// the process ends however it ends: a lock file left behind by a SIGKILL
// blocks nothing. The file holds the holder's PID, for the message a
// second start prints. It is never removed: removing it on the way out
// would let a start that opened the old file and one that creates a new
// one both hold "the" lock.
type writerLock struct{ file *os.File }

// lockWriter takes the writer lock of the database at dbPath, or says
// which daemon holds it: an error a restart cannot mend while that daemon
// runs (exit status 3).
func lockWriter(dbPath string) (*writerLock, error) {
	path := dbPath + ".lock"
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("lock %s: %w", dbPath, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dbPath, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, cannotRunError{fmt.Errorf("another collector (PID %s) is writing %s, as %s says; two would count the same traffic twice: stop that one first, or give this one another SQLITE_PATH",
				holder(f), dbPath, path)}
		}
		return nil, fmt.Errorf("lock %s: %w", dbPath, err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(pid, 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: write the PID: %w", dbPath, err)
	}
	return &writerLock{file: f}, nil
}

// holder returns the PID written in the lock file f, or "unknown" when the
// holder has not written it yet.
func holder(f *os.File) string {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 32))
	if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil {
		return strconv.Itoa(pid)
	}
	return "unknown"
}

// release gives the lock up: the next daemon may write the database.
func (l *writerLock) release() error {
	return l.file.Close()
}
