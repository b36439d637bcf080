package dashboard

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

// asset is one file as served.
type asset struct {
	body        []byte
	gzipped     []byte // nil when compression does not make it smaller
	contentType string
	etag        string
}

// assets are the files by their path below the page's root.
type assets map[string]*asset

// load reads every file of fsys, compressing each once for all requests.
func load(fsys fs.FS) (assets, error) {
	out := assets{}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		a := &asset{body: body, contentType: contentType(name)}
		if gz := compress(body); len(gz) < len(body) {
			a.gzipped = gz
		}
		sum := sha256.Sum256(body)
		// Weak, since the gzipped and the plain body share it.
		a.etag = `W/"` + hex.EncodeToString(sum[:12]) + `"`
		out[name] = a
		return nil
	})
	return out, err
}

// contentType is the file's type by its extension; files without one
// (LICENSE, VERSION) are text.
func contentType(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "text/plain; charset=utf-8"
}

func compress(body []byte) []byte {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression) // the level is valid
	w.Write(body)                                         // a bytes.Buffer takes every write
	w.Close()
	return b.Bytes()
}

// ServeHTTP answers a request for one of the files, index.html at /. It
// takes every method for GET but HEAD: the server refuses the others
// before they get here.
func (a assets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/")
	if name == "" {
		name = "index.html"
	}
	f, ok := a[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", f.etag)
	// Cached, but checked on every load: a few bytes when nothing
	// changed, and never a page of one release with a script of another.
	h.Set("Cache-Control", "no-cache")
	body := f.body
	if f.gzipped != nil {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			h.Set("Content-Encoding", "gzip")
			body = f.gzipped
		}
	}
	if matches(r.Header.Get("If-None-Match"), f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(body)
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip:
// named, or as *, with a weight above zero.
func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		coding = strings.TrimSpace(coding)
		if coding != "gzip" && coding != "*" {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimPrefix(strings.TrimSpace(params), "q="), 64)
		return err != nil || q > 0
	}
	return false
}

// matches reports whether an If-None-Match header names etag, or is *.
func matches(header, etag string) bool {
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || tag == etag {
			return true
		}
	}
	return false
}
