package httpsync

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/back2basic/collector/internal/testkit/syncbuf"
)

// schemaPath is the JSON Schema of the body, for receivers.
const schemaPath = "../contrib/http-sync.schema.json"

// TestBodiesMatchTheSchema validates every body a real sync sent against
// contrib/http-sync.schema.json, and bodies broken on purpose against it,
// which it must refuse.
func TestBodiesMatchTheSchema(t *testing.T) {
	schema := readJSON(t, mustRead(t, schemaPath))
	st := fill(t, 26, someClients())
	r := newReceiver(t)
	var log syncbuf.Buffer
	if _, err := newSyncer(t, st, testConfig(r.URL, &log)).SyncOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, bodies := r.stored()
	if len(bodies) == 0 {
		t.Fatal("no body sent")
	}
	tables := map[string]bool{}
	for _, b := range bodies {
		body := readJSON(t, b)
		if err := validate(schema, body, "body"); err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		tables[body.(map[string]any)["table"].(string)] = true
	}
	if len(tables) != 3 {
		t.Errorf("bodies of tables %v, want all three", tables)
	}

	for name, broken := range map[string]string{
		"a row without a counter": strings.Replace(string(bodies[0]), `"quic_down_packets":`, `"quic_down_packetz":`, 1),
		"a fractional counter":    regexp.MustCompile(`"siamux_up":\d+`).ReplaceAllString(string(bodies[0]), `"siamux_up":0.5`),
		"a negative counter":      regexp.MustCompile(`"quic_up":\d+`).ReplaceAllString(string(bodies[0]), `"quic_up":-1`),
		"an unknown column":       strings.Replace(string(bodies[0]), `"ip":`, `"dns":"x","ip":`, 1),
		"an unknown table":        strings.Replace(string(bodies[0]), `"table":"traffic_`, `"table":"traffic_x`, 1),
		"no batch id":             strings.Replace(string(bodies[0]), `"batch_id":`, `"batch":`, 1),
	} {
		if err := validate(schema, readJSON(t, []byte(broken)), "body"); err == nil {
			t.Errorf("%s: the schema took it", name)
		}
	}
	t.Logf("%d bodies match %s", len(bodies), schemaPath)
}

// TestBatchIDIsStable: the same rows of the same host and table have the
// same batch_id; other rows another.
func TestBatchIDIsStable(t *testing.T) {
	st := fill(t, 2, someClients())
	var sent [2][][]byte
	for i := range sent {
		r := newReceiver(t)
		var log syncbuf.Buffer
		if _, err := newSyncer(t, st, testConfig(r.URL, &log)).SyncOnce(t.Context()); err != nil {
			t.Fatal(err)
		}
		_, sent[i] = r.stored()
	}
	if len(sent[0]) < 2 || !slices.EqualFunc(sent[0], sent[1], bytes.Equal) {
		t.Fatalf("two syncs of the same rows sent different bodies (%d and %d)", len(sent[0]), len(sent[1]))
	}
	ids := map[any]bool{}
	for _, b := range sent[0] {
		ids[readJSON(t, b).(map[string]any)["batch_id"]] = true
	}
	if len(ids) != len(sent[0]) {
		t.Errorf("%d batch ids for %d different batches", len(ids), len(sent[0]))
	}
}

func mustRead(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// readJSON decodes b keeping numbers as written, so that an integer is
// told from a fraction.
func readJSON(tb testing.TB, b []byte) any {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		tb.Fatal(err)
	}
	return v
}

// validate checks v against the keywords of JSON Schema that
// contrib/http-sync.schema.json uses, and fails on any other, so that the
// schema cannot grow a keyword this test silently ignores.
func validate(schema, v any, at string) error {
	s := schema.(map[string]any)
	for keyword, want := range s {
		var err error
		switch keyword {
		case "$schema", "$id", "title", "description":
		case "type":
			err = checkType(want.(string), v)
		case "enum":
			if !slices.Contains(want.([]any), v) {
				err = fmt.Errorf("not one of %v", want)
			}
		case "required":
			for _, name := range want.([]any) {
				if _, ok := v.(map[string]any)[name.(string)]; !ok {
					err = fmt.Errorf("lacks %s", name)
				}
			}
		case "properties":
			for name, value := range v.(map[string]any) {
				if sub, ok := want.(map[string]any)[name]; ok {
					if err := validate(sub, value, at+"."+name); err != nil {
						return err
					}
				} else if s["additionalProperties"] == false {
					err = fmt.Errorf("has %s, which the schema does not allow", name)
				}
			}
		case "additionalProperties": // with properties
		case "items":
			for i, item := range v.([]any) {
				if err := validate(want, item, fmt.Sprintf("%s[%d]", at, i)); err != nil {
					return err
				}
			}
		case "minItems":
			if n, _ := want.(json.Number).Int64(); int64(len(v.([]any))) < n {
				err = fmt.Errorf("fewer than %d items", n)
			}
		case "minLength", "maxLength":
			n, _ := want.(json.Number).Int64()
			if l := int64(len([]rune(v.(string)))); keyword == "minLength" && l < n || keyword == "maxLength" && l > n {
				err = fmt.Errorf("%d characters, against %s %d", l, keyword, n)
			}
		case "pattern":
			if !regexp.MustCompile(want.(string)).MatchString(v.(string)) {
				err = fmt.Errorf("does not match %s", want)
			}
		case "minimum":
			got, _ := strconv.ParseFloat(string(v.(json.Number)), 64)
			if least, _ := want.(json.Number).Float64(); got < least {
				err = fmt.Errorf("%s below %s", v, want)
			}
		default:
			return fmt.Errorf("%s: keyword %s is not known to this test's validator", at, keyword)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
	}
	return nil
}

// checkType reports whether v is a JSON value of type typ.
func checkType(typ string, v any) error {
	ok := false
	switch typ {
	case "object":
		_, ok = v.(map[string]any)
	case "array":
		_, ok = v.([]any)
	case "string":
		_, ok = v.(string)
	case "integer":
		n, isNumber := v.(json.Number)
		_, err := strconv.ParseInt(string(n), 10, 64)
		_, errU := strconv.ParseUint(string(n), 10, 64)
		ok = isNumber && (err == nil || errU == nil)
	}
	if !ok {
		return fmt.Errorf("%v is not of type %s", v, typ)
	}
	return nil
}
