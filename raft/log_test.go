package raft

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
)

// logLines decodes the JSON lines of buf.
func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// testAdapter returns an adapter writing JSON lines to a buffer, with a
// clock the test moves.
func testAdapter(level slog.Level) (*hclogAdapter, *bytes.Buffer, *time.Time) {
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level}))
	h := newHCLogAdapter(l.With("node", "n1"), "raft")
	now := time.Unix(1_000_000, 0)
	h.noise.now = func() time.Time { return now }
	return h, &buf, &now
}

func TestHCLogNoiseRateLimited(t *testing.T) {
	h, buf, now := testAdapter(slog.LevelDebug)
	n2 := hraft.Server{ID: "n2", Address: "127.0.0.1:7411"}
	n3 := hraft.Server{ID: "n3", Address: "127.0.0.1:7421"}
	at := func(d time.Duration) { *now = time.Unix(1_000_000, 0).Add(d) }
	step := noiseInterval / 10

	// n2 is down: raft names it by its server, its address and its ID.
	h.Error("failed to appendEntries to", "peer", n2, "error", "dial tcp: connection refused")
	for i := 1; i < 10; i++ {
		at(time.Duration(i) * step)
		h.Error("failed to heartbeat to", "peer", n2.Address, "backoff time", "500ms", "error", "connection refused")
		h.Warn("failed to contact", "server-id", n2.ID, "time", "1s")
	}
	// n3 is down too: its lines are limited on their own.
	h.Error("failed to heartbeat to", "peer", n3.Address, "error", "connection refused")
	// Other messages are never limited.
	for range 3 {
		h.Info("entering leader state", "leader", "Node at 127.0.0.1:7401 [Leader]")
	}
	at(noiseInterval)
	h.Error("failed to heartbeat to", "peer", n2.Address, "error", "connection refused")

	lines := logLines(t, buf)
	var msgs []string
	for _, l := range lines {
		msgs = append(msgs, fmt.Sprintf("%v peer=%v server-id=%v suppressed=%v", l["msg"], l["peer"], l["server-id"], l["suppressed"]))
	}
	want := []string{
		"failed to appendEntries to peer={Voter n2 127.0.0.1:7411} server-id=<nil> suppressed=<nil>",
		"failed to heartbeat to peer=127.0.0.1:7421 server-id=<nil> suppressed=<nil>",
		"entering leader state peer=<nil> server-id=<nil> suppressed=<nil>",
		"entering leader state peer=<nil> server-id=<nil> suppressed=<nil>",
		"entering leader state peer=<nil> server-id=<nil> suppressed=<nil>",
		"failed to heartbeat to peer=127.0.0.1:7411 server-id=<nil> suppressed=18",
	}
	if strings.Join(msgs, "\n") != strings.Join(want, "\n") {
		t.Errorf("logged:\n%s\nwant:\n%s", strings.Join(msgs, "\n"), strings.Join(want, "\n"))
	}

	// Quiet for an interval: the next failure is logged at once, with
	// nothing suppressed.
	buf.Reset()
	at(3 * noiseInterval)
	h.Error("failed to appendEntries to", "peer", n2, "error", "connection refused")
	if lines := logLines(t, buf); len(lines) != 1 || lines[0]["suppressed"] != nil {
		t.Errorf("after a quiet interval: %v", lines)
	}
}

// TestHCLogNoiseBelowLevel checks that lines the handler would drop
// anyway neither count nor take a peer's place.
func TestHCLogNoiseBelowLevel(t *testing.T) {
	h, buf, _ := testAdapter(slog.LevelInfo)
	h.Debug("failed to contact", "server-id", hraft.ServerID("n2"), "time", "3s")
	h.Warn("failed to contact", "server-id", hraft.ServerID("n2"), "time", "1s")
	if lines := logLines(t, buf); len(lines) != 1 || lines[0]["level"] != "WARN" || lines[0]["suppressed"] != nil {
		t.Errorf("logged %v, want the warning alone", lines)
	}
}

func TestNoiseLimiterBounded(t *testing.T) {
	l := newNoiseLimiter(time.Minute)
	now := time.Unix(0, 0)
	for i := range 10 * maxNoisePeers {
		now = now.Add(time.Millisecond)
		l.peer([]any{"peer", hraft.Server{ID: hraft.ServerID(fmt.Sprint(i)), Address: hraft.ServerAddress(fmt.Sprint("a", i))}}, "peer")
		if ok, _ := l.allow(fmt.Sprint("p", i), now); !ok {
			t.Fatalf("the first line of peer %d was suppressed", i)
		}
	}
	if len(l.peers) > maxNoisePeers || len(l.addrs) > maxNoisePeers {
		t.Errorf("the limiter holds %d peers and %d addresses, at most %d", len(l.peers), len(l.addrs), maxNoisePeers)
	}
	// The newest peers are kept, with their limit.
	last := fmt.Sprint("p", 10*maxNoisePeers-1)
	if ok, _ := l.allow(last, now); ok {
		t.Error("the newest peer's second line within the interval was let through")
	}
}

// TestHCLogOwnKeys checks that hashicorp/raft's keys that tenantkv's
// loggers use too are renamed: a line has node= once, the node's ID.
func TestHCLogOwnKeys(t *testing.T) {
	h, buf, _ := testAdapter(slog.LevelInfo)
	h.Named("snapshots").Info("entering candidate state", "node", "Node at 127.0.0.1:7401 [Candidate]", "term", 2, "time", "1.2s")
	var raw bytes.Buffer
	raw.Write(buf.Bytes())
	lines := logLines(t, buf)
	if len(lines) != 1 {
		t.Fatalf("logged %d lines", len(lines))
	}
	l := lines[0]
	if l["node"] != "n1" || l["raft_node"] != "Node at 127.0.0.1:7401 [Candidate]" || l["component"] != "raft" || l["subsystem"] != "raft.snapshots" || l["raft_time"] != "1.2s" {
		t.Errorf("line %v", l)
	}
	if c := strings.Count(raw.String(), `"node":`); c != 1 {
		t.Errorf("node appears %d times in %s", c, raw.String())
	}
}
