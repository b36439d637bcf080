// Package httpsync tests the HTTP sync end to end: the real daemon in a
// lab with real traffic, sending to the example receiver of
// contrib/http-receiver run as a real process, through the receiver's
// failures.
package httpsync

import (
	"testing"

	"github.com/back2basic/collector/internal/testkit/selfexec"
)

// TestMain makes this test binary collector when run by that name.
func TestMain(m *testing.M) { selfexec.Main(m) }
