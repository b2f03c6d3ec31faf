package proof

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/client"
	"github.com/tenantkv/tenantkv/internal/wire"
)

// The smaller gaps of hardening issue 18 (item 5 of its Why), each attacked
// as found: watches outside the tenant's limits, a watch that outlives the
// revocation of its token, hello answers that tell token IDs apart, debug
// and per-tenant metrics endpoints open to anyone, a data directory
// readable by other users, and a SIGTERM that waits for a slow apply.

// pipelineWatches sends n watch requests on one connection at once and
// returns the answers, in the order they arrive.
func pipelineWatches(t *testing.T, addr, token string, n int, wait time.Duration) []*wire.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait+30*time.Second)
	defer cancel()
	rc, _, err := loginRaw(ctx, addr, token)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var buf []byte
	for i := range n {
		buf, err = wire.AppendRequestFrame(buf, &wire.Request{ID: uint64(100 + i), Op: wire.OpWatch, Wait: wait})
		if err != nil {
			t.Fatal(err)
		}
	}
	_ = rc.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := rc.nc.Write(buf); err != nil {
		t.Fatal(err)
	}
	var out []*wire.Response
	for range n {
		resp, _, err := rc.read()
		if err != nil {
			t.Fatalf("after %d of %d answers: %v", len(out), n, err)
		}
		out = append(out, resp)
	}
	return out
}

// TestAttackGapsWatchLimits: watches are requests like any other. 200
// watches of a tenant limited to 5 ops/s (burst 1) are refused past its
// rate limit, and 200 watches of a tenant limited to 10 concurrent requests
// are refused past 10 waiting at once (each waiting watch holds a slot).
// Before the fix all 200 were answered OK in both cases.
func TestAttackGapsWatchLimits(t *testing.T) {
	totals.Runs.Add(1)
	c := newCluster(t, 1)
	ctx := t.Context()
	addr := c.nodes[0].listen
	cases := []struct {
		name string
		cfg  client.TenantConfig
		max  func(elapsed time.Duration) int
	}{
		{"ops-per-sec", client.TenantConfig{OpsPerSec: 5, Burst: 1, MaxWatches: 1000},
			// The burst, the refill during the run, and a margin.
			func(d time.Duration) int { return 1 + int(5*d.Seconds()) + 2 }},
		{"concurrency", client.TenantConfig{MaxConcurrent: 10, MaxWatches: 1000},
			func(time.Duration) int { return 10 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := "wl-" + tc.name
			if _, err := c.admin.CreateTenant(ctx, name, &tc.cfg); err != nil {
				t.Fatal(err)
			}
			tok, err := c.admin.NewTenantToken(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			const n = 200
			wait := 2 * time.Second
			start := time.Now()
			answers := pipelineWatches(t, addr, tok, n, wait)
			totals.Attacks.Add(n)
			elapsed := time.Since(start)
			ok, limited := 0, 0
			for _, r := range answers {
				switch r.Code {
				case wire.CodeOK:
					ok++
				case wire.CodeRateLimited:
					limited++
					if r.RetryAfter <= 0 {
						t.Errorf("a refused watch carries no RetryAfter: %+v", r)
					}
				default:
					t.Errorf("unexpected answer to a watch: %s: %s", r.Code, r.Msg)
				}
			}
			t.Logf("%d watches of a tenant with %+v, waiting %v each: %d answered, %d refused as rate limited, in %v",
				n, tc.cfg, wait, ok, limited, elapsed.Round(time.Millisecond))
			if limit := tc.max(elapsed); ok > limit {
				totals.Violations.Add(1)
				t.Errorf("%d of %d watches were admitted, the limits allow at most %d: watches are not counted against the tenant's limits", ok, n, limit)
			}
			if limited == 0 {
				t.Errorf("no watch was refused")
			}
		})
	}
}

// startWatch sends one watch on its own connection and returns a channel
// that receives its answer.
func startWatch(t *testing.T, addr, token string, after uint64, wait time.Duration) (<-chan *wire.Response, func()) {
	t.Helper()
	rc, _, err := loginRaw(t.Context(), addr, token)
	if err != nil {
		t.Fatal(err)
	}
	rc.timeout = wait + 20*time.Second
	ch := make(chan *wire.Response, 1)
	go func() {
		resp, _, err := rc.call(&wire.Request{Op: wire.OpWatch, ReadVersion: after, Wait: wait})
		if err != nil {
			resp = &wire.Response{Code: wire.CodeInternal, Msg: "test: " + err.Error()}
		}
		ch <- resp
	}()
	return ch, func() { rc.Close() }
}

// tenantVersion returns the tenant's current data version, from a write.
func tenantVersion(t *testing.T, addr, token string) uint64 {
	t.Helper()
	rc, _, err := loginRaw(t.Context(), addr, token)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	resp, _, err := rc.call(&wire.Request{Op: wire.OpSet, Key: []byte("pre"), Value: []byte("before")})
	if err != nil || resp.Code != wire.CodeOK {
		t.Fatalf("set: %v %+v", err, resp)
	}
	return resp.DataVersion
}

// TestAttackGapsWatchCutAtRevocation: a watch waiting when its token is
// revoked (or its tenant locked or deleted) must end promptly with a
// refusal, and never deliver a write applied after the revocation. Before
// the fix the watch went on waiting and delivered the next write.
func TestAttackGapsWatchCutAtRevocation(t *testing.T) {
	totals.Runs.Add(1)
	c := newCluster(t, 1)
	ctx := t.Context()
	addr := c.nodes[0].listen
	const wait = 20 * time.Second
	const prompt = 5 * time.Second

	t.Run("revoked-then-written", func(t *testing.T) {
		// The revocation and the writes after it come as fast as the
		// operator can send them; the watch must see none of the writes.
		if _, err := c.admin.CreateTenant(ctx, "rw", nil); err != nil {
			t.Fatal(err)
		}
		for round := range 5 {
			tok, id, err := c.admin.NewToken(ctx, "rw", nil)
			if err != nil {
				t.Fatal(err)
			}
			v := tenantVersion(t, addr, tok)
			ch, closeW := startWatch(t, addr, tok, v, wait)
			totals.Attacks.Add(1)
			// Let the watch reach its wait (it answers at once if it sees
			// anything; it sees nothing until the writes below). The checks
			// below hold whether or not it got there.
			select {
			case r := <-ch:
				t.Fatalf("round %d: the watch answered before any change: %+v", round, r)
			case <-time.After(200 * time.Millisecond):
			}
			if err := c.admin.RevokeToken(ctx, id); err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				if err := c.admin.Tenant("rw").Set(ctx, fmt.Appendf(nil, "post/%d/%d", round, i), []byte("after revocation")); err != nil {
					t.Fatal(err)
				}
			}
			var r *wire.Response
			select {
			case r = <-ch:
			case <-time.After(prompt):
				t.Fatalf("round %d: the watch of a revoked token is still waiting %v after the revocation", round, prompt)
			}
			closeW()
			for _, e := range r.Events {
				if bytes.HasPrefix(e.Key, []byte("post/")) {
					totals.Violations.Add(1)
					t.Errorf("round %d: a watch of a revoked token delivered %q (version %d), written after the revocation", round, e.Key, e.Version)
				}
			}
			if r.Code != wire.CodePermissionDenied {
				t.Errorf("round %d: the watch of a revoked token answered %s (%q, %d events), not permission denied", round, r.Code, r.Msg, len(r.Events))
			}
		}
	})

	cut := []struct {
		name  string
		do    func(t *testing.T, tenant, tokenID string)
		codes []wire.Code
	}{
		{"revoked", func(t *testing.T, _, id string) {
			if err := c.admin.RevokeToken(ctx, id); err != nil {
				t.Fatal(err)
			}
		}, []wire.Code{wire.CodePermissionDenied}},
		{"locked", func(t *testing.T, tenant, _ string) {
			if _, err := c.admin.UpdateTenant(ctx, tenant, &client.TenantUpdate{State: "locked"}); err != nil {
				t.Fatal(err)
			}
		}, []wire.Code{wire.CodeTenantLocked, wire.CodePermissionDenied}},
		{"deleted", func(t *testing.T, tenant, _ string) {
			if err := c.admin.DeleteTenant(ctx, tenant); err != nil {
				t.Fatal(err)
			}
		}, []wire.Code{wire.CodePermissionDenied}},
	}
	for _, tc := range cut {
		t.Run(tc.name, func(t *testing.T) {
			name := "cut-" + tc.name
			if _, err := c.admin.CreateTenant(ctx, name, nil); err != nil {
				t.Fatal(err)
			}
			tok, id, err := c.admin.NewToken(ctx, name, nil)
			if err != nil {
				t.Fatal(err)
			}
			v := tenantVersion(t, addr, tok)
			ch, closeW := startWatch(t, addr, tok, v, wait)
			defer closeW()
			select {
			case r := <-ch:
				t.Fatalf("the watch answered before any change: %+v", r)
			case <-time.After(200 * time.Millisecond):
			}
			start := time.Now()
			tc.do(t, name, id)
			select {
			case r := <-ch:
				t.Logf("%s: the watch ended %v later: %s %q", tc.name, time.Since(start).Round(time.Millisecond), r.Code, r.Msg)
				if len(r.Events) > 0 {
					t.Errorf("the watch delivered %d events after the %s", len(r.Events), tc.name)
				}
				okCode := false
				for _, want := range tc.codes {
					okCode = okCode || r.Code == want
				}
				if !okCode {
					t.Errorf("after the tenant was %s the watch answered %s (%q), want one of %v", tc.name, r.Code, r.Msg, tc.codes)
				}
			case <-time.After(prompt):
				t.Errorf("the watch is still waiting %v after its token was %s", prompt, tc.name)
			}
		})
	}
}

// helloAnswer says hello with token on a fresh connection to addr and
// returns the raw answer (the request ID is always 1).
func helloAnswer(t *testing.T, addr, token string) (*wire.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	rc, err := dialRaw(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	resp, raw, err := rc.call(&wire.Request{Op: wire.OpHello, Version: wire.ProtocolVersion, Token: token})
	if err != nil {
		t.Fatalf("hello on %s: %v", addr, err)
	}
	return resp, raw
}

// TestAttackGapsHelloAnswers: a bad token gets the same answer, to the
// byte, whatever is wrong with it (unknown ID, known ID with a wrong
// secret, malformed) and on whichever node it is tried (the leader, or a
// follower whose link from the leader is slowed by 300 ms); no answer
// before authentication carries a digit or an address (raft indexes, the
// leader's address). Before the fix a follower answered an unknown ID with
// not-leader and the leader's address, and a known ID with permission
// denied, so that token IDs could be probed.
func TestAttackGapsHelloAnswers(t *testing.T) {
	totals.Runs.Add(1)
	rng := rand.New(rand.NewPCG(testSeed(t), 18))
	c := newCluster(t, 3)
	ctx := t.Context()
	if _, err := c.admin.CreateTenant(ctx, "hl", nil); err != nil {
		t.Fatal(err)
	}
	tok, err := c.admin.NewTenantToken(ctx, "hl")
	if err != nil {
		t.Fatal(err)
	}
	waitTokenEverywhere(t, c.endpoints(), tok)
	l, err := c.waitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var f *testNode
	for _, nd := range c.nodes {
		if nd != l {
			f = nd
			break
		}
	}
	// tkv_<16 hex ID>_<secret>
	secret := tok[len("tkv_")+17:]
	wrong := []byte(secret)
	wrong[0] ^= 1
	unknownID := fmt.Sprintf("%016x", rng.Uint64())
	bad := []struct{ name, token string }{
		{"unknown ID", "tkv_" + unknownID + "_" + secret},
		{"known ID, wrong secret", tok[:len("tkv_")+17] + string(wrong)},
		{"malformed", "not-a-token"},
		{"empty", ""},
	}
	c.net.SetDelay(l.id, f.id, 300*time.Millisecond)
	defer c.net.Heal()
	check := func(t *testing.T, nodes []*testNode, wantCode wire.Code) {
		var first []byte
		var firstWhat string
		for _, nd := range nodes {
			for _, b := range bad {
				resp, raw := helloAnswer(t, nd.listen, b.token)
				totals.Attacks.Add(1)
				what := fmt.Sprintf("%s on %s", b.name, nd.id)
				t.Logf("%s: %s %q leader=%q", what, resp.Code, resp.Msg, resp.Leader)
				if resp.Leader != "" {
					t.Errorf("%s: the hello answer names the leader's address %q", what, resp.Leader)
				}
				if strings.ContainsAny(resp.Msg, "0123456789") {
					t.Errorf("%s: the hello answer carries figures: %q", what, resp.Msg)
				}
				if wantCode != 0 && resp.Code != wantCode {
					t.Errorf("%s: answered %s (%q), want %s", what, resp.Code, resp.Msg, wantCode)
				}
				if first == nil {
					first, firstWhat = raw, what
				} else if !bytes.Equal(raw, first) {
					totals.Violations.Add(1)
					t.Errorf("hello answers differ: %s got %x, %s got %x", what, raw, firstWhat, first)
				}
			}
		}
	}
	t.Run("leader-and-lagging-follower", func(t *testing.T) {
		check(t, []*testNode{l, f}, wire.CodePermissionDenied)
		// The valid token still works on the lagging follower.
		if resp, _ := helloAnswer(t, f.listen, tok); resp.Code != wire.CodeOK {
			t.Errorf("the valid token on the lagging follower: %s %q", resp.Code, resp.Msg)
		}
	})
	t.Run("restarted-lagging-follower", func(t *testing.T) {
		// Right after a restart the follower has not caught up: whatever it
		// answers, it answers alike for every bad token, without figures.
		c.kill(f)
		if err := c.restart(ctx, f); err != nil {
			t.Fatal(err)
		}
		check(t, []*testNode{f}, 0)
	})
}

// gapNode is one `tenantkv serve` process of these tests, a single-node
// cluster of its own.
type gapNode struct {
	t                  *testing.T
	bin, dir           string
	listen, raft, http string
	env, extra         []string
	cmd                *exec.Cmd
	stdout, stderr     *lockedBuffer
	exited             chan struct{}
	waitErr            error
	token              string
}

// startGapNode starts bin serve on dir with extra flags and environment.
func startGapNode(t *testing.T, bin, dir string, env []string, extra ...string) *gapNode {
	t.Helper()
	n := &gapNode{t: t, bin: bin, dir: dir, env: env, extra: extra}
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(3)
		if err != nil {
			t.Fatal(err)
		}
		n.listen, n.raft, n.http = ports[0], ports[1], ports[2]
		err = n.start()
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == 5 {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if n.alive() {
			_ = n.cmd.Process.Kill()
			<-n.exited
		}
	})
	tok, err := os.ReadFile(filepath.Join(dir, "operator.token"))
	if err != nil {
		t.Fatal(err)
	}
	n.token = strings.TrimSpace(string(tok))
	return n
}

func (n *gapNode) start() error {
	args := append([]string{"serve", "--data", n.dir, "--listen", n.listen, "--raft", n.raft, "--http", n.http}, n.extra...)
	cmd := exec.Command(n.bin, args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TENANTKV_") && !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(append(env, "GORACE=atexit_sleep_ms=0"), n.env...)
	n.stdout, n.stderr = &lockedBuffer{}, &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = n.stdout, n.stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	n.cmd, n.exited = cmd, make(chan struct{})
	go func(exited chan struct{}) {
		n.waitErr = cmd.Wait()
		close(exited)
	}(n.exited)
	deadline := time.Now().Add(procReadyTimeout)
	for !strings.Contains(n.stdout.String(), " ready: ") {
		select {
		case <-n.exited:
			if strings.Contains(n.stderr.String(), "address already in use") {
				return syscall.EADDRINUSE
			}
			return fmt.Errorf("exited before it was ready: %v: %s", n.waitErr, tailOf(n.stderr.String(), 2000))
		case <-time.After(pollEvery):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-n.exited
			return fmt.Errorf("not ready after %v: %s", procReadyTimeout, tailOf(n.stderr.String(), 2000))
		}
	}
	return nil
}

func (n *gapNode) alive() bool {
	if n.exited == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and returns how long the process took to exit, up to
// limit (then it is killed and stop reports limit).
func (n *gapNode) stop(limit time.Duration) time.Duration {
	start := time.Now()
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		return time.Since(start)
	case <-time.After(limit):
		_ = n.cmd.Process.Kill()
		<-n.exited
		return limit
	}
}

// db opens a client of the node, once it has a leader again (right after a
// restart it has none for a moment).
func (n *gapNode) db(t *testing.T, token string) *client.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), recoverTimeout)
	defer cancel()
	var db *client.DB
	err := poll(ctx, func() error {
		var err error
		db, err = client.Open(ctx, []string{n.listen}, &client.Options{Token: token, DialTimeout: time.Second})
		if err == nil {
			if err = db.Ping(ctx); err != nil {
				db.Close()
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// httpDo does one request to a node's HTTP address, with a bearer token
// unless it is empty, and returns the status and the body.
func httpDo(t *testing.T, method, url, bearer string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestAttackGapsHTTPEndpoints: without --debug the node serves no /debug/*
// (profiles, flush); /metrics names no tenant unless the node runs with
// --metrics-tenant-labels or the scrape carries an operator token. Before
// the fix anyone who reached the HTTP address could profile the node,
// flush its store and read every tenant's name, key count and traffic.
// Skipped with -short: it runs the binary.
func TestAttackGapsHTTPEndpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the tenantkv binary and runs processes; skipped with -short")
	}
	bin := buildBinary(t)
	const tenant = "secretive-tenant-name"
	prepare := func(n *gapNode) string {
		op := n.db(t, n.token)
		if _, err := op.CreateTenant(t.Context(), tenant, nil); err != nil {
			t.Fatal(err)
		}
		if err := op.Tenant(tenant).Set(t.Context(), []byte("k"), []byte("v")); err != nil {
			t.Fatal(err)
		}
		tok, err := op.NewTenantToken(t.Context(), tenant)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	t.Run("default", func(t *testing.T) {
		n := startGapNode(t, bin, t.TempDir(), nil)
		tenantTok := prepare(n)
		base := "http://" + n.http
		for _, ep := range []struct{ method, path string }{
			{"GET", "/debug/pprof/"}, {"GET", "/debug/pprof/goroutine?debug=1"}, {"GET", "/debug/pprof/heap"},
			{"GET", "/debug/pprof/profile?seconds=1"}, {"POST", "/debug/flush"},
		} {
			if code, _ := httpDo(t, ep.method, base+ep.path, ""); code != http.StatusNotFound {
				t.Errorf("%s %s without --debug: %d, want 404", ep.method, ep.path, code)
			}
			if code, _ := httpDo(t, ep.method, base+ep.path, n.token); code != http.StatusNotFound {
				t.Errorf("%s %s without --debug, with the operator token: %d, want 404", ep.method, ep.path, code)
			}
		}
		for _, who := range []struct{ name, bearer string }{{"no token", ""}, {"a tenant token", tenantTok}, {"a bad token", "tkv_0123456789abcdef_nope"}} {
			code, body := httpDo(t, "GET", base+"/metrics", who.bearer)
			if code != http.StatusOK {
				t.Errorf("/metrics with %s: %d", who.name, code)
			}
			if strings.Contains(body, tenant) || strings.Contains(body, "tenantkv_tenant_") {
				t.Errorf("/metrics with %s names tenants or serves per-tenant series", who.name)
			}
			if !strings.Contains(body, "tenantkv_is_leader") {
				t.Errorf("/metrics with %s lacks the node's own series", who.name)
			}
		}
		if code, body := httpDo(t, "GET", base+"/metrics", n.token); code != http.StatusOK || !strings.Contains(body, `tenant="`+tenant+`"`) {
			t.Errorf("/metrics with the operator token: %d, per-tenant series present: %v", code, strings.Contains(body, tenant))
		}
	})
	t.Run("flags", func(t *testing.T) {
		n := startGapNode(t, bin, t.TempDir(), nil, "--debug", "--metrics-tenant-labels")
		prepare(n)
		base := "http://" + n.http
		if code, _ := httpDo(t, "GET", base+"/debug/pprof/", ""); code != http.StatusOK {
			t.Errorf("/debug/pprof/ with --debug: %d", code)
		}
		if code, _ := httpDo(t, "POST", base+"/debug/flush", ""); code != http.StatusNoContent {
			t.Errorf("POST /debug/flush with --debug: %d", code)
		}
		if _, body := httpDo(t, "GET", base+"/metrics", ""); !strings.Contains(body, `tenant="`+tenant+`"`) {
			t.Errorf("/metrics with --metrics-tenant-labels has no per-tenant series")
		}
	})
}

// wrongModes returns every path under dir with a mode other than 0700 for a
// directory or 0600 for a file.
func wrongModes(t *testing.T, dir string) []string {
	t.Helper()
	var bad []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if info.Mode().Type()&fs.ModeSymlink == 0 && info.Mode().Perm() != want {
			rel, _ := filepath.Rel(dir, path)
			bad = append(bad, fmt.Sprintf("%s %v", rel, info.Mode().Perm()))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return bad
}

// TestAttackGapsDataDirPermissions: a data directory that already exists
// with mode 0755 and files 0644 (an older version, a hand-made directory,
// a umask of 022) is 0700 with files 0600 once the node has started, and
// so are the files the node writes later (Pebble's, raft's, snapshots).
// Before the fix the directory stayed 0755 and Pebble wrote 0644 files,
// readable by every local user. Skipped with -short: it runs the binary.
func TestAttackGapsDataDirPermissions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the tenantkv binary and runs processes; skipped with -short")
	}
	old := syscall.Umask(0o022) // what most shells have; the child inherits it
	defer syscall.Umask(old)
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "left-by-someone"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A node makes its files, then they are opened up as an older version
	// or a careless copy would leave them.
	n := startGapNode(t, bin, dir, nil, "--snapshot-threshold", "16", "--snapshot-interval", "100ms")
	if d := n.stop(30 * time.Second); d >= 30*time.Second {
		t.Fatal("the node did not stop")
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(path, 0o755)
		}
		return os.Chmod(path, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.start(); err != nil {
		t.Fatal(err)
	}
	// Writes, snapshots and a flush make new files of every kind.
	op := n.db(t, n.token)
	if _, err := op.CreateTenant(t.Context(), "perm", nil); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if err := op.Tenant("perm").Set(t.Context(), fmt.Appendf(nil, "k%d", i), bytes.Repeat([]byte("v"), 1000)); err != nil {
			t.Fatal(err)
		}
	}
	err = poll(t.Context(), func() error {
		snaps, _ := filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*", "state.bin"))
		if len(snaps) == 0 {
			return errors.New("no snapshot yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	bad := wrongModes(t, dir)
	if n.stop(30*time.Second) >= 30*time.Second {
		t.Fatal("the node did not stop")
	}
	bad = append(bad, wrongModes(t, dir)...)
	for i, b := range bad {
		if i == 20 {
			t.Errorf("… and %d more", len(bad)-20)
			break
		}
		t.Errorf("not private: %s", b)
	}
}

// faultBinary builds cmd/tenantkv with the tenantkvfaults tag, whose test
// hooks (server/faults_hooks.go) the environment switches on.
var faultBuilt struct {
	once sync.Once
	path string
	err  error
}

func buildFaultBinary(t testing.TB) string {
	t.Helper()
	faultBuilt.once.Do(func() {
		dir := filepath.Dir(buildBinary(t))
		faultBuilt.path = filepath.Join(dir, "tenantkv-faults")
		args := []string{"build", "-tags", "tenantkvfaults", "-o", faultBuilt.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "github.com/tenantkv/tenantkv/cmd/tenantkv")...).CombinedOutput()
		if err != nil {
			faultBuilt.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if faultBuilt.err != nil {
		t.Fatalf("building tenantkv with fault hooks: %v", faultBuilt.err)
	}
	return faultBuilt.path
}

// TestAttackGapsSIGTERMBounded: SIGTERM stops a node within its shutdown
// timeout even while an apply hangs, and the node restarts with every
// acknowledged write. Two hangs: the store's write-ahead log stops taking
// writes (the apply in progress waits in its commit, as during a huge
// write), and raft's log write stalls (the entries behind it wait), both
// for a minute, as on a dying disk. Before the fix the process waited for
// the stall. Skipped with -short: it runs the binary.
func TestAttackGapsSIGTERMBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the tenantkv binary and runs processes; skipped with -short")
	}
	bin := buildFaultBinary(t)
	for _, at := range []string{"store-wal", "raft-log"} {
		t.Run(at, func(t *testing.T) { sigtermDuringStall(t, bin, at) })
	}
	t.Run("while-starting", func(t *testing.T) { sigtermWhileStarting(t, bin) })
}

// sigtermWhileStarting: a new node whose first raft log write (its
// bootstrap configuration) stalls never becomes ready; SIGTERM must still
// stop it within the shutdown timeout.
func sigtermWhileStarting(t *testing.T, bin string) {
	trigger := filepath.Join(t.TempDir(), "stall")
	if err := os.WriteFile(trigger, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ports, err := freePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--data", filepath.Join(t.TempDir(), "data"), "--listen", ports[0], "--raft", ports[1],
		"--http", ports[2], "--shutdown-timeout", "3s")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TENANTKV_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "TENANTKV_FAULT_STALL_FILE="+trigger, "TENANTKV_FAULT_STALL=60s", "TENANTKV_FAULT_STALL_AT=raft-log")
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
	}()
	err = poll(t.Context(), func() error {
		if !strings.Contains(stderr.String(), "fault hook: stalling") {
			return errors.New("not stalled yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the fault hook never stalled the start: %v\n%s", err, tailOf(stderr.String(), 2000))
	}
	start := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		t.Logf("SIGTERM while the bootstrap stalled: exited after %v (%v): %s", time.Since(start).Round(time.Millisecond), err, tailOf(stderr.String(), 400))
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("SIGTERM took %v to stop a node stalled in its start (shutdown timeout 3s)", d.Round(time.Millisecond))
		}
	case <-time.After(45 * time.Second):
		t.Errorf("SIGTERM did not stop a node stalled in its start within 45s (shutdown timeout 3s)")
	}
}

func sigtermDuringStall(t *testing.T, bin, at string) {
	dir := filepath.Join(t.TempDir(), "data")
	trigger := filepath.Join(t.TempDir(), "stall")
	env := []string{"TENANTKV_FAULT_STALL_FILE=" + trigger, "TENANTKV_FAULT_STALL=60s", "TENANTKV_FAULT_STALL_AT=" + at}
	n := startGapNode(t, bin, dir, env, "--shutdown-timeout", "3s")
	op := n.db(t, n.token)
	ctx := t.Context()
	if _, err := op.CreateTenant(ctx, "st", nil); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := op.Tenant("st").Set(ctx, fmt.Appendf(nil, "k%d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(trigger, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// Writes that stall in the node: big ones, so that the store's log
	// buffers fill at once.
	stalled := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		var err error
		for i := 0; err == nil && i < 100; i++ {
			err = op.Tenant("st").Set(wctx, fmt.Appendf(nil, "stalled%d", i), bytes.Repeat([]byte("s"), 90_000))
		}
		stalled <- err
	}()
	err := poll(ctx, func() error {
		if !strings.Contains(n.stderr.String(), "fault hook: stalling") {
			return errors.New("not stalled yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the fault hook never stalled the node: %v\n%s", err, tailOf(n.stderr.String(), 2000))
	}
	// Let the stall take hold: the writes behind it wait.
	select {
	case err := <-stalled:
		t.Fatalf("the writes did not stall: %v", err)
	case <-time.After(time.Second):
	}
	took := n.stop(45 * time.Second)
	t.Logf("%s stalled: SIGTERM stopped the process after %v (%v); stderr tail: %s",
		at, took.Round(time.Millisecond), n.waitErr, tailOf(n.stderr.String(), 600))
	if took > 15*time.Second {
		t.Errorf("SIGTERM took %v to stop the node during a stall of %s (shutdown timeout 3s)", took.Round(time.Millisecond), at)
	}
	os.Remove(trigger)
	if err := n.start(); err != nil {
		t.Fatal(err)
	}
	op2 := n.db(t, n.token)
	for i := range 50 {
		v, err := op2.Tenant("st").Get(ctx, fmt.Appendf(nil, "k%d", i))
		if err != nil || string(v) != fmt.Sprintf("v%d", i) {
			t.Errorf("after the restart k%d = %q, %v: an acknowledged write is lost", i, v, err)
		}
	}
	if err := op2.Tenant("st").Set(ctx, []byte("after"), []byte("restart")); err != nil {
		t.Errorf("a write after the restart: %v", err)
	}
	<-stalled
}
