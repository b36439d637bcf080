// Package promnames finds the metric names that PromQL expressions use,
// in a Grafana dashboard or a Prometheus rules file, and checks them
// against a /metrics scrape, so that a dashboard or an alert asking for a
// series nobody exports fails a test instead of staying empty.
//
// It reads PromQL well enough for that, not fully: a name is an identifier
// outside label matchers, ranges and strings, that is not followed by an
// opening parenthesis (a function) and is not a keyword. A name given as
// {__name__="..."} is not seen.
package promnames

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.yaml.in/yaml/v2"
)

// keywords are the PromQL words that are not names when no parenthesis
// follows them.
var keywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"atan2": true, "inf": true, "nan": true,
}

// grouping are the modifiers whose parenthesis, when they have one, holds
// label names.
var grouping = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// Extract returns the metric names exprs use, sorted, each once. Grafana's
// variables ($name, ${name}) are skipped, and of its label_values(metric,
// label) only the metric counts.
func Extract(exprs ...string) []string {
	var names []string
	for _, e := range exprs {
		names = extract(names, e)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func extract(names []string, e string) []string {
	for i := 0; i < len(e); {
		c := e[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(e, i)
		case c == '#':
			i = skipTo(e, i, "\n")
		case c == '{':
			i = skipGroup(e, i, '{', '}')
		case c == '[':
			i = skipGroup(e, i, '[', ']')
		case c == '$':
			// A Grafana variable: $name, or ${name...}.
			if i+1 < len(e) && e[i+1] == '{' {
				i = skipGroup(e, i+1, '{', '}')
			} else {
				i = skipWord(e, i+1)
			}
		case isDigit(c) || c == '.':
			// A number or a duration.
			i = skipWord(e, i)
		case isNameStart(c):
			end := skipWord(e, i)
			word, lower, next := e[i:end], strings.ToLower(e[i:end]), skipSpace(e, end)
			i = end
			paren := next < len(e) && e[next] == '('
			// A word before a parenthesis calls a function; before by
			// or without, it aggregates: sum by (x) (...).
			after := strings.ToLower(e[next:skipWord(e, next)])
			call := paren || after == "by" || after == "without"
			switch {
			case grouping[lower] && paren:
				i = skipGroup(e, next, '(', ')')
			case word == "label_values" && paren:
				end := skipGroup(e, next, '(', ')')
				args := e[next+1 : max(next+1, end-1)]
				if comma := lastTopLevelComma(args); comma >= 0 {
					names = extract(names, args[:comma])
				}
				i = end
			case call, grouping[lower], keywords[lower]:
			default:
				names = append(names, word)
			}
		default:
			i++
		}
	}
	return names
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isNameStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':'
}

// skipWord returns the end of the name, number or duration at i.
func skipWord(e string, i int) int {
	for i < len(e) && (isNameStart(e[i]) || isDigit(e[i]) || e[i] == '.') {
		i++
	}
	return i
}

func skipSpace(e string, i int) int {
	for i < len(e) && strings.IndexByte(" \t\r\n", e[i]) >= 0 {
		i++
	}
	return i
}

// skipTo returns the index past the next end after i, or the end of e.
func skipTo(e string, i int, end string) int {
	n := strings.Index(e[i+1:], end)
	if n < 0 {
		return len(e)
	}
	return i + 1 + n + len(end)
}

// skipString returns the index past the string that starts at i.
func skipString(e string, i int) int {
	quote := e[i]
	for j := i + 1; j < len(e); j++ {
		switch {
		case e[j] == '\\' && quote != '`':
			j++
		case e[j] == quote:
			return j + 1
		}
	}
	return len(e)
}

// skipGroup returns the index past the close that matches the open at i,
// strings inside skipped.
func skipGroup(e string, i int, open, close byte) int {
	depth := 0
	for i < len(e) {
		switch e[i] {
		case '"', '\'', '`':
			i = skipString(e, i)
			continue
		case open:
			depth++
		case close:
			depth--
			if depth == 0 {
				return i + 1
			}
		}
		i++
	}
	return len(e)
}

// lastTopLevelComma returns the index of the last comma of args outside
// parentheses, braces and strings, or -1.
func lastTopLevelComma(args string) int {
	last := -1
	for i := 0; i < len(args); {
		switch args[i] {
		case '"', '\'', '`':
			i = skipString(args, i)
			continue
		case '(':
			i = skipGroup(args, i, '(', ')')
			continue
		case '{':
			i = skipGroup(args, i, '{', '}')
			continue
		case ',':
			last = i
		}
		i++
	}
	return last
}

// DashboardExprs returns the queries of a Grafana dashboard in its JSON
// model: every target's expr, in panels and rows at any depth, and the
// query of every templating variable.
func DashboardExprs(dashboard []byte) ([]string, error) {
	var model any
	if err := json.Unmarshal(dashboard, &model); err != nil {
		return nil, fmt.Errorf("read dashboard: %w", err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if e, ok := v["expr"].(string); ok {
				exprs = append(exprs, e)
			}
			for _, child := range v {
				walk(child)
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	walk(model)
	if root, ok := model.(map[string]any); ok {
		templating, _ := root["templating"].(map[string]any)
		list, _ := templating["list"].([]any)
		for _, v := range list {
			variable, _ := v.(map[string]any)
			if variable["type"] != "query" {
				continue
			}
			// The query is a string, or an object holding one.
			switch q := variable["query"].(type) {
			case string:
				exprs = append(exprs, q)
			case map[string]any:
				if s, ok := q["query"].(string); ok {
					exprs = append(exprs, s)
				}
			}
		}
	}
	return exprs, nil
}

// RuleExprs returns the expressions of a Prometheus rules file: of every
// alerting and recording rule.
func RuleExprs(rules []byte) ([]string, error) {
	var file struct {
		Groups []struct {
			Rules []struct {
				Expr string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(rules, &file); err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	var exprs []string
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	return exprs, nil
}

// Exported returns the names of the series in a scrape in the text
// format: a histogram's _bucket, _sum and _count each, as PromQL names
// them.
func Exported(scrape io.Reader) (map[string]bool, error) {
	names := make(map[string]bool)
	lines := bufio.NewScanner(scrape)
	lines.Buffer(nil, 1<<20)
	for lines.Scan() {
		line := strings.TrimSpace(lines.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if end := strings.IndexAny(line, "{ "); end > 0 {
			names[line[:end]] = true
		}
	}
	if err := lines.Err(); err != nil {
		return nil, fmt.Errorf("read scrape: %w", err)
	}
	return names, nil
}

// synthetic are the series Prometheus makes itself, from scraping and
// alerting, which no target exports.
var synthetic = map[string]bool{
	"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true,
	"scrape_samples_post_metric_relabeling": true, "scrape_series_added": true,
	"ALERTS": true, "ALERTS_FOR_STATE": true,
}

// Missing returns the names of used that neither exported holds nor
// Prometheus makes itself.
func Missing(used []string, exported map[string]bool) []string {
	var out []string
	for _, name := range used {
		if !exported[name] && !synthetic[name] {
			out = append(out, name)
		}
	}
	return out
}
