package alerts

import (
	"testing"

	"github.com/back2basic/collector/internal/testkit/selfexec"
)

// TestMain makes this test binary collector when run by that name.
func TestMain(m *testing.M) { selfexec.Main(m) }
