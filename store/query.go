package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/back2basic/collector/traffic"
)

// Query selects stored traffic: a span of time and, optionally, one client.
type Query struct {
	// Since and Until bound the span, [Since, Until). A zero Until means no
	// end.
	Since, Until time.Time
	// Clients limits the query to these clients; none means every client.
	Clients []traffic.Client
	// Roles limits TopClients and TopRoles to the clients of these roles
	// over the span (see Roles); none means every role. Other reads
	// ignore it.
	Roles []string
	// Limit, when above zero, is the most keys an answer may hold: the
	// clients or prefixes TopClients and TopPrefixes list, whatever their
	// n, and the periods of a Series. An answer that would hold more
	// fails with ErrLimit, having held no more than Limit+1 in memory.
	Limit int
}

// ErrLimit is the error of a read whose answer would hold more keys than
// Query.Limit.
var ErrLimit = errors.New("more keys than the query's limit")

// sqlLimit is the LIMIT of a query for the n busiest keys (all when n is
// 0, none when negative) that may hold no more than limit of them (any
// number when 0): one past limit, so that more can be told apart.
func sqlLimit(n, limit int) int {
	switch {
	case n < 0:
		return 0
	case limit > 0 && (n == 0 || n > limit):
		return limit + 1
	case n == 0:
		return -1 // SQLite's "no limit"
	}
	return n
}

// noEnd stands for a zero Until: far past any stored time, yet far from
// overflowing when rounded.
const noEnd = math.MaxInt64 / 4

func (q Query) span() (from, to int64) {
	to = noEnd
	if !q.Until.IsZero() {
		to = q.Until.Unix()
	}
	return q.Since.Unix(), to
}

// filter returns the SQL condition on the clients, if any, and its
// arguments.
func (q Query) filter(alias string) (string, []any) {
	if len(q.Clients) == 0 {
		return "", nil
	}
	args := make([]any, len(q.Clients))
	for i, c := range q.Clients {
		args[i] = c.String()
	}
	return " AND " + alias + "ip IN (?" + strings.Repeat(", ?", len(args)-1) + ")", args
}

// ClientTotal is one client's traffic summed over a span of time.
type ClientTotal struct {
	Client traffic.Client
	// DNS is the client's reverse DNS name, or "" when none is known.
	DNS string
	// Role is the client's role over the span (see Roles).
	Role string
	// Traffic holds the summed bytes and packets per class and direction.
	Traffic traffic.Traffic
}

// Top is the answer of TopClients.
type Top struct {
	// Clients are the busiest clients, busiest first.
	Clients []ClientTotal
	// Rest sums the clients left out; RestClients counts them.
	Rest        traffic.Traffic
	RestClients int
}

// TopClients sums each client's traffic over the query's span and returns
// the n busiest (all when n is 0, none when negative) by the bytes of
// classes (all classes when empty), and the rest summed; clients with no
// bytes in those classes are left out. The sums, the ranking and the cut
// are done by SQLite, so memory is bounded by n however many clients the
// span holds: under a flood of forged addresses a day may hold millions.
// It reads the coarsest tables that answer exactly, in one snapshot: it
// neither waits for a flush in progress nor holds one up. Where retention
// has kept only hourly or daily rows, the span's ends are resolved to
// whole hours or days: a row counts when its middle is in the span.
func (s *Store) TopClients(ctx context.Context, q Query, n int, classes []traffic.Class) (Top, error) {
	var top Top
	var err error
	top.Rest, top.RestClients, err = s.rank(ctx, q, n, classes, byClient, func(ip, dns, role string, t *traffic.Traffic) error {
		c := ClientTotal{DNS: dns, Role: role, Traffic: *t}
		var err error
		if c.Client, err = traffic.ParseClient(ip); err != nil {
			return err
		}
		top.Clients = append(top.Clients, c)
		return nil
	})
	if err != nil {
		return Top{}, fmt.Errorf("read totals per client from %s: %w", s.path, err)
	}
	return top, nil
}

// grouping is what rank sums per: the SQL of a sum's key, over the column
// ip of the traffic tables, and of its name, over the sums s and what from
// joins them with; and whether the sums hold each key's role, which only
// a key of one client has.
type grouping struct {
	key, dns, from string
	roles          bool
}

// byClient ranks clients, named by the names table, with their roles.
var byClient = grouping{key: "ip", dns: "coalesce(n.dns, '')", from: "sums AS s LEFT JOIN names AS n ON n.ip = s.key", roles: true}

// rank sums the traffic over the query's span per key of g and calls fn
// with the n busiest keys, busiest first, as TopClients describes; it
// returns the sum of the keys left out and how many they are. The role
// fn is given is "" unless g has roles.
func (s *Store) rank(ctx context.Context, q Query, n int, classes []traffic.Class, g grouping, fn func(key, dns, role string, t *traffic.Traffic) error) (rest traffic.Traffic, restKeys int, err error) {
	if len(q.Roles) > 0 && !g.roles {
		return rest, 0, errors.New("only clients have roles; a filter by role applies to totals per client or role")
	}
	err = s.read(ctx, func(tx *sql.Tx, h horizons) error {
		from, to := q.span()
		sums, args := keySums(plan(from, to, h), q, classes, g)
		var key, dns, role string
		roleColumn := "''"
		if g.roles {
			roleColumn = "s.role"
		}
		query := fmt.Sprintf(`%s
SELECT s.key, %s, %s, %s
FROM %s
ORDER BY s.rank DESC, s.key LIMIT ?`, sums, g.dns, roleColumn, columnList("s.%s", ", "), g.from)
		var listed traffic.Traffic
		keys := 0
		err := scanTraffic(ctx, tx, query, append(args, sqlLimit(n, q.Limit)), []any{&key, &dns, &role}, func(t *traffic.Traffic) error {
			keys++
			if q.Limit > 0 && keys > q.Limit {
				return ErrLimit
			}
			listed.Add(t)
			return fn(key, dns, role, t)
		})
		if err != nil || n == 0 || n > 0 && keys < n {
			return err
		}
		var all int
		query = fmt.Sprintf("%s\nSELECT count(*), %s FROM sums", sums, columnList("coalesce(SUM(%s), 0)", ", "))
		return scanTraffic(ctx, tx, query, args, []any{&all}, func(total *traffic.Traffic) error {
			rest, restKeys = total.Sub(&listed), all-keys
			return nil
		})
	})
	return rest, restKeys, err
}

// keySums returns a WITH clause defining sums: a row per value of g's key,
// with the counters summed over the pieces and a rank, the bytes of
// classes, and only keys whose rank is above zero; and its arguments.
// Where g has roles, sums has each key's role too (peer_sums, defined
// before it, holds the peers of the pieces), and only keys of the roles
// of q.Roles, if any.
func keySums(pieces []piece, q Query, classes []traffic.Class, g grouping) (string, []any) {
	if len(classes) == 0 {
		classes = traffic.Classes()
	}
	var rank []string
	for _, c := range columns {
		if !c.packets && slices.Contains(classes, c.class) {
			rank = append(rank, c.name)
		}
	}
	cond, condArgs := q.filter("")
	var selects []string
	var args []any
	for _, p := range pieces {
		selects = append(selects, fmt.Sprintf("SELECT ip, %s FROM %s WHERE timestamp >= ? AND timestamp < ?%s",
			columnList("%s", ", "), p.table, cond))
		args = append(append(args, p.from, p.to), condArgs...)
	}
	if len(selects) == 0 {
		// An empty span: a query with the right columns and no rows.
		selects = append(selects, fmt.Sprintf("SELECT ip, %s FROM %s WHERE 0", columnList("%s", ", "), Minutes))
	}
	with, role, having := "WITH ", "", ""
	if g.roles {
		peers, peerArgs := peerSums(pieces)
		with += peers + ",\n"
		args = append(peerArgs, args...)
		peer := func(col string) string { return "(SELECT " + col + " FROM peer_sums WHERE peer_ip = " + g.key + ")" }
		role = ", " + roleSQL(g.key, "SUM(%s)", peerTagsSQL(peer("inbound"), peer("outbound"))) + " AS role"
		if len(q.Roles) > 0 {
			having = " AND role IN (?" + strings.Repeat(", ?", len(q.Roles)-1) + ")"
			for _, r := range q.Roles {
				args = append(args, r)
			}
		}
	}
	return fmt.Sprintf(`%ssums AS (
SELECT %s AS key, %s, %s AS rank%s
FROM (%s)
GROUP BY key HAVING rank > 0%s)`, with, g.key, columnList("SUM(%s) AS %s", ", "), "SUM("+strings.Join(rank, " + ")+")", role,
		strings.Join(selects, "\nUNION ALL\n"), having), args
}

// read runs fn in a read transaction: one snapshot of the file, with the
// rollup state that says which table holds which time.
func (s *Store) read(ctx context.Context, fn func(tx *sql.Tx, h horizons) error) error {
	// Read-only transactions begin deferred and take no write lock.
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback() // it only ever read
	h, err := readHorizons(ctx, tx)
	if err != nil {
		return err
	}
	return fn(tx, h)
}

// scanPlan runs the query of each piece's table over the piece's span, with
// args after the span's, and calls fn with the piece's index for each row as
// scanTraffic does. A
// table's query is prepared once for all its pieces: a series by local day
// has hundreds of small ones.
func scanPlan(ctx context.Context, tx *sql.Tx, pieces []piece, query func(Table) string, args, lead []any, fn func(int, *traffic.Traffic) error) error {
	var stmts [Days + 1]*sql.Stmt
	defer func() {
		for _, st := range stmts {
			if st != nil {
				st.Close()
			}
		}
	}()
	for i, p := range pieces {
		if stmts[p.table] == nil {
			var err error
			if stmts[p.table], err = tx.PrepareContext(ctx, query(p.table)); err != nil {
				return err
			}
		}
		rows, err := stmts[p.table].QueryContext(ctx, append([]any{p.from, p.to}, args...)...)
		if err != nil {
			return err
		}
		if err := scanRows(rows, lead, func(t *traffic.Traffic) error { return fn(i, t) }); err != nil {
			return err
		}
	}
	return nil
}

// scanTraffic runs query and calls fn for each row as scanRows does.
func scanTraffic(ctx context.Context, tx *sql.Tx, query string, args, lead []any, fn func(t *traffic.Traffic) error) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	return scanRows(rows, lead, fn)
}

// scanRows calls fn for each of rows, whose leading columns go to lead and
// whose last columns are the counters, in columns order, and closes them.
func scanRows(rows *sql.Rows, lead []any, fn func(t *traffic.Traffic) error) error {
	defer rows.Close()
	sums := make([]int64, len(columns))
	dest := slices.Clone(lead)
	for i := range sums {
		dest = append(dest, &sums[i])
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		var t traffic.Traffic
		for i, c := range columns {
			*c.tally(&t) = uint64(sums[i])
		}
		if err := fn(&t); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Period is the calendar unit a Series is cut into.
type Period int

// The periods. Weeks start on Monday, as in ISO 8601.
const (
	Hour Period = iota
	Day
	Week
	Month
)

// Bucket is the traffic of one period of a series.
type Bucket struct {
	// Start and End bound the period, cut to the query's span.
	Start, End time.Time
	Traffic    traffic.Traffic
}

// Series sums the traffic over the query's span per period p of the
// calendar in loc, one Bucket per period, empty ones included, the first and
// last cut to the span. The query needs an Until.
//
// Rows of UTC days fill local days only in UTC; elsewhere a period of a day
// or more is read as whole UTC days with the hours (or minutes) between each
// local midnight and the nearest UTC one moved across (see seriesByDays).
// Where retention has left only coarser rows, each is counted in the period
// holding its middle. So in a zone off UTC by a part of an hour, hourly
// rows cannot cut at its midnight: a local day of them starts with the UTC
// hour whose middle is at or after its midnight, 18:00 UTC in Asia/Kolkata
// (+5:30, half an hour before midnight) and in Asia/Kathmandu (+5:45, a
// quarter of an hour before), and a local day of daily rows is the UTC day
// whose noon it holds. Where minute rows are kept it cuts at the minute.
func (s *Store) Series(ctx context.Context, q Query, p Period, loc *time.Location) ([]Bucket, error) {
	if q.Until.IsZero() || !q.Since.Before(q.Until) {
		return nil, fmt.Errorf("read series: empty span %s to %s", q.Since.Format(time.RFC3339), q.Until.Format(time.RFC3339))
	}
	if p >= Day {
		return s.series(ctx, q, p, loc, seriesByDays)
	}
	return s.series(ctx, q, p, loc, seriesByPeriod)
}

// seriesReader fills the empty buckets that cut up the query's span with
// its traffic, in one snapshot.
type seriesReader func(ctx context.Context, tx *sql.Tx, h horizons, q Query, buckets []Bucket) error

// series is Series reading the buckets with read.
func (s *Store) series(ctx context.Context, q Query, p Period, loc *time.Location, read seriesReader) ([]Bucket, error) {
	buckets, err := periods(q.Since.In(loc), q.Until.In(loc), p, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("read series: %w", err)
	}
	if err := s.read(ctx, func(tx *sql.Tx, h horizons) error { return read(ctx, tx, h, q, buckets) }); err != nil {
		return nil, fmt.Errorf("read series from %s: %w", s.path, err)
	}
	return buckets, nil
}

// seriesQuery returns the query of a series' sums per timestamp of table t
// over a span, for scanPlan, and its arguments after the span's.
func seriesQuery(q Query) (func(t Table) string, []any) {
	cond, args := q.filter("")
	return func(t Table) string {
		return fmt.Sprintf("SELECT timestamp, %s FROM %s WHERE timestamp >= ? AND timestamp < ?%s GROUP BY timestamp",
			columnList("SUM(%s)", ", "), t, cond)
	}, args
}

// seriesByPeriod adds the traffic of each bucket to it, planning each
// bucket on its own, so that a table's rows are read only where they fall
// whole into one period: UTC days inside a local month, say, but the hours
// at its ends. Pieces that meet are read as one. Each row counts in the
// bucket holding its middle.
func seriesByPeriod(ctx context.Context, tx *sql.Tx, h horizons, q Query, buckets []Bucket) error {
	from, to := q.span()
	var pieces []piece
	for _, b := range buckets {
		for _, pc := range plan(max(b.Start.Unix(), from), min(b.End.Unix(), to), h) {
			pieces = appendPiece(pieces, pc)
		}
	}
	query, args := seriesQuery(q)
	var at int64
	return scanPlan(ctx, tx, pieces, query, args, []any{&at}, func(p int, t *traffic.Traffic) error {
		middle := at + pieces[p].table.step()/2
		i := sort.Search(len(buckets), func(i int) bool { return buckets[i].End.Unix() > middle })
		buckets[min(i, len(buckets)-1)].Traffic.Add(t)
		return nil
	})
}

// seriesByDays adds the traffic of each bucket to it as seriesByPeriod
// does, for buckets of whole local days, reading daily rows where those are
// rolled up: in a zone off UTC no UTC day falls whole into a local one, and
// planning each local day on its own reads 24 hourly rows per client and
// day.
//
// Each bucket's boundary b (a local midnight, or an end of the span) has a
// nearest UTC midnight n. The span from the first n to the last is read
// once, each row counting in the bucket whose n-span holds its middle:
// daily rows, mostly. Then the rows between each b and its n, at most 12
// hours of them, move across it: those of [b, n) belong after b, not before;
// those of [n, b) before it. Before the first bucket and after the last,
// that means adding them or leaving them out. A row so ends in the bucket
// holding its middle, as with seriesByPeriod: rollups are exact, and plan
// counts no row twice across spans that meet. In Berlin that reads a day's
// daily rows and one or two hourly rows per client and day.
func seriesByDays(ctx context.Context, tx *sql.Tx, h horizons, q Query, buckets []Bucket) error {
	bounds := make([]int64, len(buckets)+1) // b, the buckets' starts and the last end
	nearest := make([]int64, len(bounds))   // n, the UTC midnight nearest each
	for i := range bounds {
		if i < len(buckets) {
			bounds[i] = buckets[i].Start.Unix()
		} else {
			bounds[i] = buckets[i-1].End.Unix()
		}
		nearest[i] = floorTo(bounds[i]+Days.step()/2, Days.step())
	}
	query, args := seriesQuery(q)
	var at int64
	// What moves out of a bucket is taken off once all is read: a bucket
	// can lose rows before it gains them where two boundaries share an n.
	// The buckets before the first and after the last stand for what the
	// span leaves out.
	taken := make([]traffic.Traffic, len(buckets))
	add := func(to []traffic.Traffic, i int, t *traffic.Traffic) {
		if i >= 0 && i < len(to) {
			to[i].Add(t)
		}
	}
	sums := make([]traffic.Traffic, len(buckets))
	days := plan(nearest[0], nearest[len(nearest)-1], h)
	err := scanPlan(ctx, tx, days, query, args, []any{&at}, func(p int, t *traffic.Traffic) error {
		middle := at + days[p].table.step()/2
		add(sums, sort.Search(len(nearest), func(i int) bool { return nearest[i] > middle })-1, t)
		return nil
	})
	if err != nil {
		return err
	}
	// A move takes the rows of a piece from one bucket into another.
	type move struct{ into, from int }
	var (
		moves  []move // by piece
		pieces []piece
	)
	for i, b := range bounds {
		n := nearest[i]
		// into is where the rows between b and n belong, from where the
		// read above counted them.
		m := move{into: i, from: i - 1}
		if n < b {
			m = move{into: i - 1, from: i}
		}
		for _, pc := range plan(min(b, n), max(b, n), h) {
			moves = append(moves, m)
			pieces = append(pieces, pc)
		}
	}
	err = scanPlan(ctx, tx, pieces, query, args, []any{&at}, func(p int, t *traffic.Traffic) error {
		add(sums, moves[p].into, t)
		add(taken, moves[p].from, t)
		return nil
	})
	if err != nil {
		return err
	}
	for i := range buckets {
		buckets[i].Traffic = sums[i].Sub(&taken[i])
	}
	return nil
}

// periods returns the empty buckets of p covering [since, until), or
// ErrLimit when they are more than limit (any number when 0): a span of
// years by hour is refused after limit of them, not made.
func periods(since, until time.Time, p Period, limit int) ([]Bucket, error) {
	var out []Bucket
	for start := since; start.Before(until); {
		if limit > 0 && len(out) == limit {
			return nil, ErrLimit
		}
		end := nextPeriod(start, p)
		if end.After(until) {
			end = until
		}
		out = append(out, Bucket{Start: start, End: end})
		start = end
	}
	return out, nil
}

// nextPeriod returns the start of the period of p after the one holding t,
// in t's location.
func nextPeriod(t time.Time, p Period) time.Time {
	y, m, d := t.Date()
	switch p {
	case Hour:
		// Adding an hour to the start of a local hour stays on local
		// hours through daylight saving changes of whole hours.
		return time.Date(y, m, d, t.Hour(), 0, 0, 0, t.Location()).Add(time.Hour)
	case Day:
		return time.Date(y, m, d+1, 0, 0, 0, 0, t.Location())
	case Week:
		return time.Date(y, m, d+7-(int(t.Weekday())+6)%7, 0, 0, 0, 0, t.Location())
	}
	return time.Date(y, m+1, 1, 0, 0, 0, 0, t.Location())
}

// Row is one stored row of a traffic table.
type Row struct {
	traffic.Row
	// DNS is the client's latest reverse DNS name, or "".
	DNS string
	// Role is the client's role in the row's minute, hour or day (see
	// Roles).
	Role string
}

// Rows calls fn for every row of table t in the query's span, in time then
// address order, as the rows are read: memory stays the same whatever the
// span. It stops at fn's first error and returns it. The rows come from one
// snapshot; a long export keeps the daemon's WAL from being reset until it
// is done, but never blocks its writes.
func (s *Store) Rows(ctx context.Context, t Table, q Query, fn func(*Row) error) error {
	cond, args := q.filter("t.")
	var errFn error
	err := s.read(ctx, func(tx *sql.Tx, _ horizons) error {
		from, to := q.span()
		query := fmt.Sprintf(`SELECT t.timestamp, t.ip, coalesce(n.dns, ''), %s, %s
FROM %s AS t LEFT JOIN names AS n ON n.ip = t.ip
LEFT JOIN %s AS p ON p.timestamp = t.timestamp AND p.ip = t.ip
WHERE t.timestamp >= ? AND t.timestamp < ?%s
ORDER BY t.timestamp, t.ip`, roleSQL("t.ip", "t.%s", peerTagsSQL("p.inbound", "p.outbound")), columnList("t.%s", ", "), t, peerTable(t), cond)
		var (
			at  int64
			ip  string
			row Row
		)
		return scanTraffic(ctx, tx, query, append([]any{from, to}, args...), []any{&at, &ip, &row.DNS, &row.Role}, func(tr *traffic.Traffic) error {
			var err error
			if row.Client, err = traffic.ParseClient(ip); err != nil {
				return err
			}
			row.Start, row.Traffic = time.Unix(at, 0), *tr
			errFn = fn(&row)
			return errFn
		})
	})
	switch {
	case errFn != nil:
		return errFn
	case err != nil:
		return fmt.Errorf("read %s from %s: %w", t, s.path, err)
	}
	return nil
}
