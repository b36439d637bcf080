// Package dashboard is the collector's web page: live top clients with
// their rates, stacked charts of each class up and down over a day to all
// time, the busiest clients or /24 and /48 prefixes of a span, one
// client's own view, and the billing period's totals. It is plain HTML, CSS
// and JavaScript reading the JSON API of package web, with uPlot for the
// charts; every file is embedded in the binary, so the page works offline
// and loads nothing from elsewhere, as the server's Content-Security-Policy
// (default-src 'self') requires.
//
// static/vendor/uplot holds uPlot as published on npm, its licence and
// its version; update-uplot.sh refreshes it.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// page is the embedded files, ready to serve; built once, since they never
// change while the binary runs.
var page = mustLoad(static, "static")

// Handler serves the dashboard: index.html at / and its files beside it,
// each with its content type, gzip-compressed to clients that accept it,
// and revalidated by ETag so that a new binary's files are never taken
// from a stale cache. Mount it at the server's root: the page reaches the
// API at api/v1/ relative to itself.
func Handler() http.Handler { return page }

// mustLoad reads the files under dir of fsys; it fails only when the
// embedded files are broken, which the package's tests catch.
func mustLoad(fsys fs.FS, dir string) assets {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err)
	}
	a, err := load(sub)
	if err != nil {
		panic(err)
	}
	return a
}
