package report

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/back2basic/collector/store"
)

const exportAbout = `Writes the stored rows of one table, a row per client and minute, hour or
day, as they are read: any span, in constant memory. Columns are the
table's: timestamp (unix seconds, the start of the row's minute, hour or
day), ip, dns, role (the client's role in that minute, hour or day: see
collector report -by role), then the counters. Without -since, every row
is written.`

// Export runs collector export with args (after the subcommand), writing to
// stdout.
func Export(ctx context.Context, args []string, stdout io.Writer) error {
	if err := export(ctx, args, stdout, env{now: time.Now(), getenv: os.LookupEnv}); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

func export(ctx context.Context, args []string, stdout io.Writer, e env) error {
	c := newCommand("export", exportAbout, stdout, e)
	var table, format string
	c.choice(&table, "table", "minute", "the rows of", "minute", "hour", "day")
	c.choice(&format, "format", "csv", "output", "csv", "jsonl")
	if ok, err := c.parse(args); !ok {
		return err
	}
	st, _, err := c.open()
	if err != nil {
		return err
	}
	defer st.Close()
	columns := append([]string{"timestamp", "ip", "dns", "role"}, store.CounterNames()...)
	var out lineWriter = newJSONLines(stdout, columns)
	if format == "csv" {
		if out, err = newCSVLines(stdout, columns); err != nil {
			return err
		}
	}
	t := map[string]store.Table{"minute": store.Minutes, "hour": store.Hours, "day": store.Days}[table]
	err = st.Rows(ctx, t, store.Query{Since: c.since, Until: c.until, Clients: c.clients}, func(r *store.Row) error {
		values := []any{r.Start.Unix(), r.Client.String(), r.DNS, r.Role}
		for _, v := range store.Counters(&r.Traffic) {
			values = append(values, v)
		}
		return out.write(values)
	})
	if err != nil {
		return err
	}
	return out.flush()
}

// lineWriter writes export rows as they come, through a buffer.
type lineWriter interface {
	write(values []any) error
	flush() error
}

// csvLines writes RFC 4180 lines; csv.Writer buffers them.
type csvLines struct{ w *csv.Writer }

func newCSVLines(w io.Writer, columns []string) (csvLines, error) {
	l := csvLines{csv.NewWriter(w)}
	return l, l.w.Write(columns)
}

func (l csvLines) write(values []any) error { return l.w.Write(csvRecord(values)) }

func (l csvLines) flush() error {
	l.w.Flush()
	return l.w.Error()
}

// jsonLines writes one JSON object a line.
type jsonLines struct {
	w       *bufio.Writer
	enc     *json.Encoder
	columns []string
}

func newJSONLines(w io.Writer, columns []string) jsonLines {
	bw := bufio.NewWriter(w)
	return jsonLines{bw, json.NewEncoder(bw), columns}
}

func (l jsonLines) write(values []any) error {
	return l.enc.Encode(object{keys: l.columns, values: values})
}

func (l jsonLines) flush() error { return l.w.Flush() }
