package testkit

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestProductImportsNoKit fails when a package of the module that is not
// a kit itself needs a kit to build, directly or through another package:
// the product would then carry test code. go list without -test reads
// the packages as they are built, so tests may import any kit.
func TestProductImportsNoKit(t *testing.T) {
	kits := goList(t, "-f", "{{.ImportPath}}", ".")[0]
	packages := goList(t, "-f", "{{.ImportPath}} {{join .Deps \" \"}}", "../../...")
	product := 0
	for _, line := range packages {
		pkg, deps, _ := strings.Cut(line, " ")
		if isKit(pkg, kits) {
			continue
		}
		product++
		for _, dep := range strings.Fields(deps) {
			if isKit(dep, kits) {
				t.Errorf("%s needs the test kit %s to build; a kit is for tests only", pkg, dep)
			}
		}
	}
	if product == 0 {
		t.Fatalf("go list found no package of the product beside %s", kits)
	}
}

func isKit(pkg, kits string) bool {
	return pkg == kits || strings.HasPrefix(pkg, kits+"/")
}

// goList runs go list with args in this package's directory and returns
// its lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, exit.Stderr)
		}
		t.Fatalf("go list %s: %v", strings.Join(args, " "), err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}
