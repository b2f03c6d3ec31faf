package testcluster

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// FreePorts returns n distinct free ports of 127.0.0.1, as host:port.
// Another process may take one before it is bound: OnFreePorts retries.
func FreePorts(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// MustFreePorts is FreePorts that fails t.
func MustFreePorts(t testing.TB, n int) []string {
	t.Helper()
	addrs, err := FreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return addrs
}

// ErrAddrInUse: a node could not bind one of its addresses.
var ErrAddrInUse = syscall.EADDRINUSE

// IsAddrInUse reports whether err says that an address was taken.
func IsAddrInUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }

// startAttempts bounds how often a start on fresh ports is retried.
const startAttempts = 5

// OnFreePorts calls start with n fresh ports until it does not fail with
// an address in use (a port taken between choosing and binding it),
// emptying dir before each new attempt, at most startAttempts times.
func OnFreePorts(n int, dir string, start func(ports []string) error) error {
	for attempt := 1; ; attempt++ {
		ports, err := FreePorts(n)
		if err != nil {
			return err
		}
		err = start(ports)
		if err == nil || !IsAddrInUse(err) || attempt == startAttempts {
			return err
		}
		if dir != "" {
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
		}
	}
}

// OperatorToken reads the operator token a bootstrapping node wrote into
// its data directory.
func OperatorToken(dataDir string) (string, error) {
	b, err := os.ReadFile(OperatorTokenPath(dataDir))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// OperatorTokenPath is the operator token file of a bootstrapping node.
func OperatorTokenPath(dataDir string) string { return filepath.Join(dataDir, "operator.token") }
