package report

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/back2basic/collector/config"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// env is what the commands take from outside, so that tests can fix it.
type env struct {
	now    time.Time // in the location reports use for the calendar
	getenv func(string) (string, bool)
}

// command holds what report and export share: the flags that find the
// database and choose the span and the client. The same flags are the
// parameters of ParseQuery, whose errors name them without the dash.
type command struct {
	fs           *flag.FlagSet
	help         func() // writes -h's help
	env          env
	dash         string // written before a setting's name in errors: "-", or "" for query parameters
	config       string
	sqlitePath   string
	since, until time.Time        // zero when not given
	clients      []traffic.Client // none: every client
}

func newCommand(name, about string, stdout io.Writer, e env) *command {
	c := &command{fs: flag.NewFlagSet("collector "+name, flag.ContinueOnError), env: e, dash: "-"}
	// Errors are returned as one line; only -h prints the flags.
	c.fs.SetOutput(io.Discard)
	c.fs.Usage = func() {}
	c.help = func() {
		fmt.Fprintf(stdout, "usage: collector %s [flags]\n\n%s\n\nflags:\n", name, about)
		c.fs.SetOutput(stdout)
		c.fs.PrintDefaults()
		c.fs.SetOutput(io.Discard)
	}
	c.fs.StringVar(&c.config, "config", "", "env file SQLITE_PATH is read from (default "+config.DefaultFile+")")
	c.fs.StringVar(&c.sqlitePath, "sqlite-path", "", "the database (default: SQLITE_PATH from the environment, else the env file)")
	c.fs.Func("since", "start of the span: a date (its midnight), a time ago (7d, 12h) or an RFC 3339 time", func(v string) (err error) {
		c.since, err = ParseSince(v, e.now)
		return err
	})
	c.fs.Func("until", "end of the span, as -since; a date includes that day (default now)", func(v string) (err error) {
		c.until, err = ParseUntil(v, e.now)
		return err
	})
	c.fs.Func("client", "only this client: an IP address, or other for the clients counted together (the kernel map full, or too little traffic for a row of their own)", func(v string) error {
		client, err := traffic.ParseClient(v)
		if err != nil {
			return errors.New("accepted: an IP address, or other")
		}
		c.clients = []traffic.Client{client}
		return nil
	})
	return c
}

// choice adds a flag taking one of names, def when not given.
func (c *command) choice(p *string, name, def, usage string, names ...string) {
	*p = def
	c.fs.Func(name, fmt.Sprintf("%s: %s (default %s)", usage, strings.Join(names, ", "), def), func(v string) error {
		if !slices.Contains(names, v) {
			return fmt.Errorf("accepted: %s", strings.Join(names, ", "))
		}
		*p = v
		return nil
	})
}

// number adds a flag taking a whole number from lo to hi.
func (c *command) number(p *int, name, usage, accepted string, lo, hi int) {
	c.fs.Func(name, usage, func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return errors.New("accepted: " + accepted)
		}
		*p = n
		return nil
	})
}

// parse parses args and reports whether the command should go on: false
// after -h, whose help went to stdout.
func (c *command) parse(args []string) (bool, error) {
	err := c.fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		c.help()
		return false, nil
	case err != nil:
		return false, err
	case c.fs.NArg() > 0:
		return false, fmt.Errorf("unexpected argument %q; everything is a flag, such as -since 7d (-h lists them)", c.fs.Arg(0))
	}
	if err := c.check(); err != nil {
		return false, err
	}
	return true, nil
}

// check checks the settings against each other once all are set.
func (c *command) check() error {
	switch {
	case !c.until.IsZero() && c.since.IsZero():
		return fmt.Errorf("%s needs %s", c.name("until"), c.name("since"))
	case !c.until.IsZero() && !c.since.Before(c.until):
		return fmt.Errorf("%s %s is not before %s %s", c.name("since"), c.since.Format(time.RFC3339), c.name("until"), c.until.Format(time.RFC3339))
	}
	return nil
}

// name returns how errors write the setting called n.
func (c *command) name(n string) string { return c.dash + n }

// set reports whether the flag name was given.
func (c *command) set(name string) bool {
	found := false
	c.fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

// open opens the daemon's database read-only, with the settings that
// readers of it share (config.ForReaders).
func (c *command) open() (*store.Store, *config.Config, error) {
	settings, err := config.ForReaders(c.config, c.env.getenv)
	if err != nil {
		return nil, nil, err
	}
	if c.sqlitePath != "" {
		settings.SQLitePath = c.sqlitePath
	}
	st, err := store.OpenReadOnly(settings.SQLitePath)
	return st, settings, err
}
