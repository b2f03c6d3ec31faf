package testcluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// built is the tenantkv binary of this test binary, built once.
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// BuildBinary builds cmd/tenantkv from this tree into a temporary
// directory, once per test binary, with the race detector when the tests
// have it (so a race in a node fails the test, and the build reuses the
// compiled packages). RemoveBinary deletes it.
func BuildBinary() (string, error) {
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "tenantkv-test-bin-")
		if built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "tenantkv")
		args := []string{"build", "-o", built.path}
		if RaceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "github.com/tenantkv/tenantkv/cmd/tenantkv")...).CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	return built.path, built.err
}

// Binary is BuildBinary that fails t.
func Binary(t testing.TB) string {
	t.Helper()
	p, err := BuildBinary()
	if err != nil {
		t.Fatalf("building tenantkv: %v", err)
	}
	return p
}

// RemoveBinary deletes what BuildBinary built; TestMain calls it after
// m.Run.
func RemoveBinary() {
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
}

// Main runs m, removes the binary and exits: a TestMain.
func Main(m *testing.M) {
	code := m.Run()
	RemoveBinary()
	os.Exit(code)
}
