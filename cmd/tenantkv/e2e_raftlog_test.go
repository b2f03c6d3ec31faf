package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2ERaftLog runs `serve --raft-log` through real processes: a new data
// directory gets the Pebble log unless told otherwise, a directory keeps the
// log it was made with across restarts without the flag, and naming the
// other log for it is refused with a message that says what to do.
func TestE2ERaftLog(t *testing.T) {
	skipShort(t)
	t.Parallel()
	for _, tc := range []struct {
		name  string
		flags []string
		kind  string
	}{
		{"default", nil, "pebble"},
		{"bolt", []string{"--raft-log", "bolt"}, "bolt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := t.TempDir()
			n := startNode(t, dataDir, "n1", tc.flags...)
			c := &clusterCLI{t: t, endpoints: []string{n.addr}, tokenFile: filepath.Join(dataDir, "operator.token")}
			c.ok("tenant", "create", "acme")
			c.ok("--tenant", "acme", "put", "k", "before-restart")
			n.graceful(t)

			b, err := os.ReadFile(filepath.Join(dataDir, "raft", "raft-log"))
			if err != nil || string(b) != tc.kind+"\n" {
				t.Fatalf("raft/raft-log: %q, %v; want %q", b, err, tc.kind)
			}
			_, err = os.Stat(filepath.Join(dataDir, "raft", "log"))
			if hasPebble := err == nil; hasPebble != (tc.kind == "pebble") {
				t.Errorf("raft/log exists: %v, for a %s log", hasPebble, tc.kind)
			}

			other := map[string]string{"pebble": "bolt", "bolt": "pebble"}[tc.kind]
			ports := freePorts(t, 3)
			r := tkv(t, "", nil, "", "serve", "--data", dataDir, "--raft-log", other,
				"--listen", ports[0], "--raft", ports[1], "--http", ports[2])
			if r.code == 0 || !strings.Contains(r.stderr, "holds a "+tc.kind+" raft log; it cannot start with --raft-log "+other) {
				t.Errorf("serve --raft-log %s on a %s directory: %v", other, tc.kind, r)
			}

			n = startNode(t, dataDir, "n1")
			c.endpoints = []string{n.addr}
			if out := c.ok("--tenant", "acme", "get", "k"); out != "before-restart\n" {
				t.Errorf("get k after restarts: %q", out)
			}
			c.ok("--tenant", "acme", "put", "k", "after-restart")
			n.graceful(t)
		})
	}
}
