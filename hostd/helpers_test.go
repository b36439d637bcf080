package hostd_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// httptestServer serves h until the test ends and returns its address.
func httptestServer(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
