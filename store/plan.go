package store

// piece is a span of time, [from, to) in unix seconds, read from one table.
type piece struct {
	table    Table
	from, to int64
}

// plan splits [from, to) into pieces, each read from the coarsest table
// whose rows fall whole into the span and are rolled up. Rollups are exact,
// so the pieces sum to what the minute rows would.
//
// Where retention has left only coarser rows, the span is resolved to that
// table's rows: a row counts when the middle of its hour or day lies in the
// span. That takes a UTC day to the local date of the same number in any
// zone within 12 hours of UTC, and never counts a row twice or leaves a gap
// between two spans that meet.
func plan(from, to int64, h horizons) []piece {
	// The time line in zones by the finest table kept there.
	zones := []struct {
		finest   Table
		from, to int64
	}{
		{Days, from, min(to, h.hourlySince)},
		{Hours, max(from, h.hourlySince), min(to, h.minuteSince)},
		{Minutes, max(from, h.minuteSince), to},
	}
	var pieces []piece
	for _, z := range zones {
		// Zone edges are boundaries of the zone's table already; only
		// the span's own ends move.
		a, b := roundTo(z.from, z.finest.step()), roundTo(z.to, z.finest.step())
		if a < b {
			pieces = cover(pieces, a, b, Days, z.finest, h)
		}
	}
	return pieces
}

// cover appends the pieces of [a, b) read from table t where t's rows cover
// it whole and are rolled up, and from finer tables down to finest at the
// ends. a and b are boundaries of finest's rows.
func cover(pieces []piece, a, b int64, t, finest Table, h horizons) []piece {
	if t == finest {
		return appendPiece(pieces, piece{t, a, b})
	}
	step := t.step()
	until := h.hourlyUntil
	if t == Days {
		until = h.dailyUntil
	}
	lo, hi := ceilTo(a, step), min(floorTo(b, step), until)
	if lo >= hi {
		return cover(pieces, a, b, t-1, finest, h)
	}
	if a < lo {
		pieces = cover(pieces, a, lo, t-1, finest, h)
	}
	pieces = appendPiece(pieces, piece{t, lo, hi})
	if hi < b {
		pieces = cover(pieces, hi, b, t-1, finest, h)
	}
	return pieces
}

// appendPiece appends p, joining it to the last piece when that one ends
// where p starts in the same table: one query instead of two.
func appendPiece(pieces []piece, p piece) []piece {
	if n := len(pieces); n > 0 && pieces[n-1].table == p.table && pieces[n-1].to == p.from {
		pieces[n-1].to = p.to
		return pieces
	}
	return append(pieces, p)
}

// ceilTo returns t rounded up to a multiple of step.
func ceilTo(t, step int64) int64 {
	return floorTo(t+step-1, step)
}

// roundTo returns the first multiple of step whose row's middle is not
// before t: the rows from there on are the ones whose middle lies at or
// after t.
func roundTo(t, step int64) int64 {
	return ceilTo(t-step/2, step)
}
