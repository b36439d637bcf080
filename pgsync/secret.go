package pgsync

import (
	"errors"
	"net/url"
	"strings"
)

// errUnparsable stands for a connection string pgx cannot parse. pgx's
// own error quotes the string with the passwords it recognises masked,
// which it cannot promise for malformed input; this one quotes nothing.
var errUnparsable = errors.New("SYNC_POSTGRES_URL cannot be parsed (not shown: it may hold a password); " +
	"accepted: postgres://user:password@host:port/database?sslmode=verify-full, or key=value pairs such as " +
	"'host=db.example user=collector password=... dbname=fleet'")

// secret is the password of the connection, in the spellings it can take
// in a connection string, to be masked in every error that leaves the
// package: pgx's connection errors name the user and database only, but a
// server, a proxy or a library below may quote more.
type secret []string

// mask is what stands for the password in errors.
const mask = "xxxxx"

func newSecret(password string) secret {
	if password == "" {
		return nil
	}
	s := secret{password}
	for _, spelled := range []string{url.QueryEscape(password), url.PathEscape(password), url.UserPassword("", password).String()[1:]} {
		if spelled != password {
			s = append(s, spelled)
		}
	}
	return s
}

// redact returns s with the password masked.
func (sec secret) redact(s string) string {
	for _, p := range sec {
		s = strings.ReplaceAll(s, p, mask)
	}
	return s
}

// wrap returns err with the password masked in its text; nil stays nil.
func (sec secret) wrap(err error) error {
	if err == nil || len(sec) == 0 {
		return err
	}
	return &redactedError{err: err, secret: sec}
}

// redactedError is an error whose text has the password masked. Unwrap
// still reaches the original, for errors.Is and errors.As.
type redactedError struct {
	err    error
	secret secret
}

func (e *redactedError) Error() string { return e.secret.redact(e.err.Error()) }

func (e *redactedError) Unwrap() error { return e.err }
