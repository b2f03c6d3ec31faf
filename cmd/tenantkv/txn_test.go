package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/client"
	"github.com/tenantkv/tenantkv/server"
)

func TestParseTxn(t *testing.T) {
	ops, err := parseTxn(strings.NewReader(`
# a comment
set k v
SET "a b" "\x00\xff"
add ctr -5
scan "" "" 3
cas k v w
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 5 || ops[1].verb != "set" || string(ops[1].args[0]) != "a b" || !bytes.Equal(ops[1].args[1], []byte{0, 0xff}) ||
		ops[3].line != 6 || len(ops[3].args[0]) != 0 {
		t.Fatalf("parsed %+v", ops)
	}
	for _, bad := range []string{"frob k", "set k", "get", "add k x", "scan a b -1", `set "unterminated v`, "cas a b"} {
		if _, err := parseTxn(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and one reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runCommand runs cmd as run would once it is in the command table: the
// global flags and the command's own, then the command.
func runCommand(ctx context.Context, t *testing.T, cmd *command, addr, token, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut lockedBuffer
	x := &cli{env: func(string) string { return "" }, stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut, set: map[string]bool{}, cmd: cmd}
	fs := newFlagSet("tenantkv " + cmd.path)
	x.g.register(fs, x.env)
	runCmd := cmd.setup(fs, x.env)
	pos, err := parseInterspersed(fs, append([]string{"--endpoints", addr, "--token", token, "--tenant", "acme"}, args...))
	if err != nil {
		t.Fatal(err)
	}
	fs.Visit(func(f *flag.Flag) { x.set[f.Name] = true })
	err = runCmd(ctx, x, pos)
	return out.String(), errOut.String(), err
}

func TestTxnAndWatchCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	srv, err := server.Start(ctx, server.Config{DataDir: dir, ListenAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", HTTPAddr: "-",
		Raft: server.RaftTuning{HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond, LeaderLeaseTimeout: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	tok, err := os.ReadFile(filepath.Join(dir, server.OperatorTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	db, err := client.Open(ctx, []string{srv.Addr()}, &client.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.CreateTenant(ctx, "acme", nil); err != nil {
		t.Fatal(err)
	}

	// A watch from the current version, in the background.
	from, err := db.Tenant("acme").ReadVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopWatch := context.WithCancel(ctx)
	var wout lockedBuffer
	var watchErr error
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		var errOut lockedBuffer
		x := &cli{env: func(string) string { return "" }, stdin: strings.NewReader(""), stdout: &wout, stderr: &errOut, set: map[string]bool{}, cmd: watchCommand}
		fs := newFlagSet("tenantkv watch")
		x.g.register(fs, x.env)
		runCmd := watchCommand.setup(fs, x.env)
		pos, _ := parseInterspersed(fs, []string{"--endpoints", srv.Addr(), "--token", token, "--tenant", "acme", "--prefix", "k", "--from", fmt.Sprint(from)})
		fs.Visit(func(f *flag.Flag) { x.set[f.Name] = true })
		watchErr = runCmd(wctx, x, pos)
	}()

	script := "set k1 one\nset k2 two\nadd ctr 5\nadd ctr 2\nget k1\ngetint ctr\nget missing\ncas k2 two deux\ncas k2 two trois\ndel k1\nscan k l\n"
	out, errOut, err := runCommand(ctx, t, txnCommand, srv.Addr(), token, script)
	if err != nil {
		t.Fatalf("txn: %v (stderr %q)", err, errOut)
	}
	want := "k1\tone\nctr\t7\nmissing\nk2\tswapped\nk2\tnot swapped\nk2\tdeux\n"
	if out != want {
		t.Fatalf("txn printed %q, want %q", out, want)
	}
	if !strings.HasPrefix(errOut, "tenantkv: committed at version ") {
		t.Fatalf("txn stderr %q", errOut)
	}

	// JSON.
	out, _, err = runCommand(ctx, t, txnCommand, srv.Addr(), token, "getint ctr\nget k2\n", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Results []struct {
			Op    string `json:"op"`
			Key   string `json:"key"`
			Value string `json:"value"`
			Found bool   `json:"found"`
			Int   *int64 `json:"int"`
		} `json:"results"`
		Version uint64 `json:"version"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if len(doc.Results) != 2 || *doc.Results[0].Int != 7 || doc.Results[1].Value != "deux" || doc.Version != 0 {
		t.Fatalf("json %q", out)
	}

	// A bad script is a usage error, before anything is sent.
	if _, _, err := runCommand(ctx, t, txnCommand, srv.Addr(), token, "frob\n"); err == nil {
		t.Fatal("bad script accepted")
	}

	// The watch saw the transaction's changes to k*, in order.
	for deadline := time.Now().Add(10 * time.Second); strings.Count(wout.String(), "\n") < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	stopWatch()
	<-watched
	watchOut := wout.String()
	if watchErr != nil {
		t.Fatalf("watch: %v", watchErr)
	}
	lines := strings.Split(strings.TrimSpace(watchOut), "\n")
	var got []string
	for _, l := range lines {
		f := strings.SplitN(l, "\t", 2)
		if len(f) == 2 {
			got = append(got, f[1])
		}
	}
	// One event per key and transaction: its final write.
	wantEvents := []string{"set\tk2\tdeux", "delete\tk1"}
	if strings.Join(got, "|") != strings.Join(wantEvents, "|") {
		t.Fatalf("watch printed %q, want events %q", watchOut, wantEvents)
	}
}
