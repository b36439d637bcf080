package dashboard

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
)

// get requests path from Handler with the headers given, in pairs.
func get(t *testing.T, path string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFilesAndTheirTypes(t *testing.T) {
	for _, tc := range []struct{ path, contentType string }{
		{"/", "text/html; charset=utf-8"},
		{"/index.html", "text/html; charset=utf-8"},
		{"/style.css", "text/css; charset=utf-8"},
		{"/favicon.svg", "image/svg+xml"},
		{"/js/app.js", "text/javascript; charset=utf-8"},
		{"/vendor/uplot/uPlot.iife.min.js", "text/javascript; charset=utf-8"},
		{"/vendor/uplot/uPlot.min.css", "text/css; charset=utf-8"},
		{"/vendor/uplot/LICENSE", "text/plain; charset=utf-8"},
		{"/vendor/uplot/VERSION", "text/plain; charset=utf-8"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			res := get(t, tc.path)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			if got := res.Header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type %q, want %q", got, tc.contentType)
			}
			if len(body(t, res)) == 0 {
				t.Error("empty body")
			}
		})
	}
	if res := get(t, "/nothing.js"); res.StatusCode != http.StatusNotFound {
		t.Errorf("/nothing.js: status %d, want 404", res.StatusCode)
	}
}

func TestGzipWhenAccepted(t *testing.T) {
	plain := body(t, get(t, "/js/app.js"))
	for _, tc := range []struct {
		accept string
		gzip   bool
	}{
		{"", false},
		{"gzip", true},
		{"br, gzip;q=0.5", true},
		{"*", true},
		{"gzip;q=0", false},
		{"deflate", false},
	} {
		t.Run(tc.accept, func(t *testing.T) {
			res := get(t, "/js/app.js", "Accept-Encoding", tc.accept)
			if res.Header.Get("Vary") != "Accept-Encoding" {
				t.Errorf("Vary %q", res.Header.Get("Vary"))
			}
			got := body(t, res)
			if (res.Header.Get("Content-Encoding") == "gzip") != tc.gzip {
				t.Fatalf("Content-Encoding %q, want gzip %v", res.Header.Get("Content-Encoding"), tc.gzip)
			}
			if tc.gzip {
				zr, err := gzip.NewReader(bytes.NewReader(got))
				if err != nil {
					t.Fatal(err)
				}
				if got, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(got, plain) {
				t.Error("body differs from the file")
			}
		})
	}
}

func TestRevalidatedByETag(t *testing.T) {
	first := get(t, "/style.css")
	etag := first.Header.Get("ETag")
	if etag == "" || first.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, first.Header.Get("Cache-Control"))
	}
	if res := get(t, "/style.css", "If-None-Match", etag); res.StatusCode != http.StatusNotModified {
		t.Errorf("with its ETag: status %d, want 304", res.StatusCode)
	}
	if res := get(t, "/style.css", "If-None-Match", `W/"old"`); res.StatusCode != http.StatusOK {
		t.Errorf("with another ETag: status %d, want 200", res.StatusCode)
	}
}

// references are the files a page or script loads, in the forms this page
// uses: the src or href of a script or link element, ES module imports.
var references = regexp.MustCompile(`<(?:script|link)[^>]* (?:src|href)="([^"]+)"|from '(\./[^']+)'`)

// pageFiles returns the files loading / fetches, by their paths, with
// what each references, followed from index.html.
func pageFiles(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	var visit func(name string)
	visit = func(name string) {
		if _, seen := files[name]; seen {
			return
		}
		res := get(t, "/"+name)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", name, res.StatusCode)
		}
		files[name] = body(t, res)
		for _, m := range references.FindAllStringSubmatch(string(files[name]), -1) {
			ref := m[1] + m[2]
			if strings.Contains(ref, ":") {
				t.Errorf("%s loads %s from elsewhere; the page must work offline", name, ref)
				continue
			}
			visit(path.Join(path.Dir(name), ref))
		}
	}
	visit("index.html")
	return files
}

// The server's Content-Security-Policy (default-src 'self') blocks inline
// scripts and styles and eval; here they are caught before a browser
// would refuse them.
func TestPageFollowsTheContentSecurityPolicy(t *testing.T) {
	forbidden := regexp.MustCompile(`<script>|<script [^>]*>[^<]|<style|\sstyle="|\son[a-z]+="|javascript:|\beval\(|new Function\(`)
	for name, b := range pageFiles(t) {
		if m := forbidden.Find(b); m != nil {
			t.Errorf("%s: %q", name, m)
		}
	}
}

// The page's transfer size, gzip-compressed as browsers ask: every file
// loading / fetches, the API's answers aside. The bound keeps the page
// small; raise it knowingly.
func TestPageTransferSize(t *testing.T) {
	const bound = 48 << 10
	var plain, compressed int
	files := pageFiles(t)
	for name, b := range files {
		plain += len(b)
		compressed += len(body(t, get(t, "/"+name, "Accept-Encoding", "gzip")))
	}
	t.Logf("the page is %d files, %d bytes, %d gzip-compressed", len(files), plain, compressed)
	if compressed > bound {
		t.Errorf("the page is %d bytes gzip-compressed, more than %d", compressed, bound)
	}
}
