package proof

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/client"
	"github.com/tenantkv/tenantkv/internal/wire"
)

// The attacks of hardening issue 18 on memory and connections (items 2
// and 3), each against a real `tenantkv serve` process whose resident
// memory is read from /proc/<pid>/status. Every node setting goes through
// TENANTKV_* environment variables, which a node that does not know them
// ignores, so the same tests run unchanged against older binaries and show
// the figures before the fix.

// attackNode is one `tenantkv serve` process started for an attack.
type attackNode struct {
	cmd    *exec.Cmd
	dir    string
	listen string
	http   string
	token  string // operator token
	stderr *lockedBuffer
	exited chan struct{}
}

// startAttackNode starts a single-node cluster in a child process with the
// given environment (TENANTKV_* settings) and, when nofile > 0, that
// RLIMIT_NOFILE (soft and hard, so that the Go runtime cannot raise it).
func startAttackNode(t *testing.T, env map[string]string, nofile int) *attackNode {
	t.Helper()
	bin := buildBinary(t)
	ports, err := freePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	n := &attackNode{dir: filepath.Join(t.TempDir(), "node"), listen: ports[0], http: ports[2],
		stderr: &lockedBuffer{}, exited: make(chan struct{})}
	args := []string{"serve", "--data", n.dir, "--listen", n.listen, "--raft", ports[1], "--http", n.http}
	script := `exec "$0" "$@"`
	if nofile > 0 {
		script = fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile)
	}
	n.cmd = exec.Command("sh", append([]string{"-c", script, bin}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TENANTKV_") && !strings.HasPrefix(kv, "GORACE=") {
			n.cmd.Env = append(n.cmd.Env, kv)
		}
	}
	n.cmd.Env = append(n.cmd.Env, "GORACE=atexit_sleep_ms=0")
	for k, v := range env {
		n.cmd.Env = append(n.cmd.Env, k+"="+v)
	}
	stdout := &lockedBuffer{}
	n.cmd.Stdout, n.cmd.Stderr = stdout, n.stderr
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = n.cmd.Wait(); close(n.exited) }()
	t.Cleanup(func() {
		_ = n.cmd.Process.Kill()
		<-n.exited
	})
	ctx, cancel := context.WithTimeout(t.Context(), procReadyTimeout)
	defer cancel()
	if err := poll(ctx, func() error {
		select {
		case <-n.exited:
			return &permanentError{fmt.Errorf("node exited: %s", tailOf(n.stderr.String(), 2000))}
		default:
		}
		if !strings.Contains(stdout.String(), " ready: ") {
			return errors.New("not ready")
		}
		return nil
	}); err != nil {
		t.Fatalf("start node: %v", err)
	}
	tok, err := os.ReadFile(filepath.Join(n.dir, "operator.token"))
	if err != nil {
		t.Fatal(err)
	}
	n.token = strings.TrimSpace(string(tok))
	return n
}

// rss returns the node's resident memory in bytes (VmRSS).
func (n *attackNode) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// rssPeak samples the node's RSS every 20ms until stop is closed and
// returns the highest figure.
type rssPeak struct {
	peak atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func (n *attackNode) watchRSS() *rssPeak {
	p := &rssPeak{stop: make(chan struct{}), done: make(chan struct{})}
	p.peak.Store(n.rss())
	go func() {
		defer close(p.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			if r := n.rss(); r > p.peak.Load() {
				p.peak.Store(r)
			}
		}
	}()
	return p
}

func (p *rssPeak) finish() int64 {
	close(p.stop)
	<-p.done
	return p.peak.Load()
}

// metric returns the value of a metric without labels from the node's
// /metrics, or -1.
func (n *attackNode) metric(name string) float64 {
	resp, err := http.Get("http://" + n.http + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return -1
}

// checkMemoryReturned fails t unless the bytes charged to the node's
// budget go back to (about) nothing once the attack is over.
func (n *attackNode) checkMemoryReturned(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var v float64
	if err := poll(ctx, func() error {
		if v = n.metric("tenantkv_memory_in_flight_bytes"); v < 0 || v > 1<<20 {
			return fmt.Errorf("%v bytes in flight", v)
		}
		return nil
	}); err != nil {
		t.Errorf("the node's memory budget was not given back after the attack: %v", err)
	}
}

// openAs opens a client of the node with token.
func (n *attackNode) openAs(t *testing.T, token string, logger *slog.Logger) *client.DB {
	t.Helper()
	db, err := client.Open(t.Context(), []string{n.listen}, &client.Options{Token: token, DialTimeout: 5 * time.Second, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// tenantToken creates tenant name and returns a token of it.
func tenantToken(t *testing.T, admin *client.DB, name string, cfg *client.TenantConfig) string {
	t.Helper()
	if _, err := admin.CreateTenant(t.Context(), name, cfg); err != nil {
		t.Fatal(err)
	}
	tok, err := admin.NewTenantToken(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// memoryScale widens memory bounds under the race detector, whose shadow
// memory multiplies every allocation.
func memoryScale() int64 {
	if raceEnabled {
		return 4
	}
	return 1
}

const (
	attackBudget  = 128 << 20 // the node's memory budget in these tests
	attackConnMem = 40 << 20  // one connection's share (at least twice the largest frame)
)

// runConnAttacks runs every attack of this file, for the soak.
func runConnAttacks(t *testing.T) {
	for _, a := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"unread-scans", TestAttackConnUnreadScans}, {"tiny-mutations", TestAttackConnTinyMutations},
		{"idle-flood", TestAttackConnIdleFlood}, {"idle-timeout", TestAttackConnIdleTimeout},
	} {
		t.Run(a.name, a.run)
	}
}

// TestAttackConnUnreadScans: a tenant pipelines 600 scans of 4 MB answers
// on one connection and never reads. Before the fix the node buffered the
// answers of every scan it had started (256 requests in flight and 256
// queued frames, each up to 4 MB): 59 MB to 4.55 GB in 6 s. Now the answers
// queued for one connection are bounded, the node stops reading from it,
// cuts it once it has not read for the write timeout, and keeps serving the
// victim.
func TestAttackConnUnreadScans(t *testing.T) {
	totals.Runs.Add(1)
	n := startAttackNode(t, map[string]string{
		"TENANTKV_MEMORY_BUDGET":   strconv.Itoa(attackBudget),
		"TENANTKV_MAX_CONN_MEMORY": strconv.Itoa(attackConnMem),
		"TENANTKV_WRITE_TIMEOUT":   "5s",
	}, 0)
	ctx := t.Context()
	admin := n.openAs(t, n.token, nil)
	victimTok := tenantToken(t, admin, "victim", nil)
	attackTok := tenantToken(t, admin, "attacker", nil)
	attacker := n.openAs(t, attackTok, nil)
	// 45 values of 100,000 bytes: one scan answers 4.5 MB.
	val := bytes.Repeat([]byte("x"), 100_000)
	for i := range 45 {
		if err := attacker.Tenant("").Set(ctx, fmt.Appendf(nil, "big/%02d", i), val); err != nil {
			t.Fatal(err)
		}
	}
	victim := n.openAs(t, victimTok, nil)
	if err := victim.Tenant("").Set(ctx, []byte("warm"), []byte("up")); err != nil {
		t.Fatal(err)
	}
	base := n.rss()
	peak := n.watchRSS()
	g := startGoodClient(t, victim)

	rc, _, err := loginRaw(ctx, n.listen, attackTok)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	totals.Attacks.Add(1)
	const scans = 600
	var buf []byte
	for i := range scans {
		buf, _ = wire.AppendRequestFrame(buf, &wire.Request{ID: uint64(i + 10), Op: wire.OpScan, Key: []byte("big/"), End: []byte("big0")})
	}
	start := time.Now()
	written := make(chan error, 1)
	go func() {
		// The node may stop reading: the write then blocks until the
		// connection is cut.
		_ = rc.nc.SetWriteDeadline(time.Now().Add(2 * time.Minute))
		_, err := rc.nc.Write(buf)
		written <- err
	}()
	// The connection must be cut: a ping written after the cut fails.
	ping, _ := wire.AppendRequestFrame(nil, &wire.Request{ID: 1, Op: wire.OpPing})
	cutCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	cutErr := poll(cutCtx, func() error {
		select {
		case err := <-written:
			if err != nil {
				return nil // cut while the scans were still being written
			}
		default:
			return errors.New("still writing the scans")
		}
		_ = rc.nc.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := rc.nc.Write(ping); err != nil {
			return nil
		}
		written <- nil
		return errors.New("the connection still takes writes")
	})
	cutAfter := time.Since(start)
	top := peak.finish()
	g.finish(t)
	n.checkMemoryReturned(t)
	growth := top - base
	bound := (2*attackBudget + 96<<20) * memoryScale()
	t.Logf("600 pipelined 4.5 MB scans never read, on one connection: node RSS %d MiB before, peak %d MiB (%+d MiB; "+
		"budget %d MiB, bound on growth %d MiB); connection cut after %v (err %v)",
		base>>20, top>>20, growth>>20, attackBudget>>20, bound>>20, cutAfter.Round(100*time.Millisecond), cutErr)
	if growth > bound {
		t.Errorf("node RSS grew by %d MiB while a client did not read its scans, more than %d MiB", growth>>20, bound>>20)
	}
	if cutErr != nil {
		t.Errorf("the connection that never read was not cut: %v", cutErr)
	}
}

// tinyMutationsFrame is one frame of about size bytes holding a batch of
// four-byte mutations ({"k": 2}: deletes without a key, refused by the
// handler, so that the cost measured is the decoding alone).
func tinyMutationsFrame(id uint64, size int) []byte {
	n := (size - 64) / 4
	body := []byte{0x83, 0xa1, 'i', 0xcf}
	body = binary.BigEndian.AppendUint64(body, id)
	body = append(body, 0xa1, 'o', byte(wire.OpBatch), 0xa2, 'm', 'u', 0xdd)
	body = binary.BigEndian.AppendUint32(body, uint32(n))
	for range n {
		body = append(body, 0x81, 0xa1, 'k', 0x02)
	}
	return frame(body)
}

// TestAttackConnTinyMutations: frames of 16 MiB each holding four million
// tiny mutations, four on four connections at once. Before the fix, one
// such frame cost 0.7 GB to decode (40 bytes allocated per frame byte:
// msgpack grew the mutation slice by copying it) and four cost 2.5 GB.
// Now decoding allocates the mutations once, at most 21 bytes per frame
// byte, and the node charges that cost to its memory budget before it
// decodes, so the four frames are decoded one after the other.
func TestAttackConnTinyMutations(t *testing.T) {
	totals.Runs.Add(1)
	n := startAttackNode(t, map[string]string{
		"TENANTKV_MEMORY_BUDGET": strconv.Itoa(attackBudget),
	}, 0)
	ctx := t.Context()
	admin := n.openAs(t, n.token, nil)
	victimTok := tenantToken(t, admin, "victim", nil)
	attackTok := tenantToken(t, admin, "attacker", nil)
	victim := n.openAs(t, victimTok, nil)
	if err := victim.Tenant("").Set(ctx, []byte("warm"), []byte("up")); err != nil {
		t.Fatal(err)
	}
	const frameSize = wire.DefaultMaxFrame - 16
	frames := make([][]byte, 4)
	for i := range frames {
		frames[i] = tinyMutationsFrame(uint64(i+2), frameSize)
	}
	base := n.rss()
	peak := n.watchRSS()
	g := startGoodClient(t, victim)
	var wg sync.WaitGroup
	attackStart := time.Now()
	answers := make([]string, len(frames))
	for i := range frames {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc, _, err := loginRaw(ctx, n.listen, attackTok)
			if err != nil {
				answers[i] = err.Error()
				return
			}
			defer rc.Close()
			rc.timeout = 2 * time.Minute
			totals.Attacks.Add(1)
			resp, _, err := rc.send(frames[i])
			if err != nil {
				answers[i] = err.Error()
				return
			}
			answers[i] = fmt.Sprintf("%s: %s", resp.Code, resp.Msg)
		}()
	}
	wg.Wait()
	t.Logf("16 MiB frames answered after %v", time.Since(attackStart).Round(time.Millisecond))
	// Frames of 2 MiB of the same mutations fit a connection's memory:
	// they are decoded (and refused by the handler), four at once.
	small := make([]string, 4)
	for i := range small {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc, _, err := loginRaw(ctx, n.listen, attackTok)
			if err != nil {
				small[i] = err.Error()
				return
			}
			defer rc.Close()
			resp, _, err := rc.send(tinyMutationsFrame(uint64(i+10), 2<<20))
			if err != nil {
				small[i] = err.Error()
				return
			}
			small[i] = fmt.Sprintf("%s: %s", resp.Code, resp.Msg)
		}()
	}
	wg.Wait()
	t.Logf("4 frames of 2 MiB of 4-byte mutations: answers %q after %v", small, time.Since(attackStart).Round(time.Millisecond))
	// Let the victim show it is served.
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = poll(pctx, func() error {
		if g.ops.Load() < 20 {
			return errors.New("victim still warming")
		}
		return nil
	})
	top := peak.finish()
	g.finish(t)
	n.checkMemoryReturned(t)
	growth := top - base
	bound := (2*attackBudget + 96<<20) * memoryScale()
	t.Logf("4 frames of %d MiB of 4-byte mutations at once: node RSS %d MiB before, peak %d MiB (%+d MiB, %.1f bytes per frame byte; "+
		"budget %d MiB, bound on growth %d MiB); answers %q",
		frameSize>>20, base>>20, top>>20, growth>>20, float64(growth)/float64(4*frameSize), attackBudget>>20, bound>>20, answers)
	if growth > bound {
		t.Errorf("node RSS grew by %d MiB for 4 frames of %d MiB, more than %d MiB", growth>>20, frameSize>>20, bound>>20)
	}
}

// TestAttackConnIdleFlood: one tenant token opens idle connections until
// the node refuses them. Before the fix (RLIMIT_NOFILE 20,000, 20,000
// connections) the node ran out of file descriptors ("accept4: too many
// open files") and every other tenant's requests timed out. The node here
// runs with RLIMIT_NOFILE 1024 so that exhaustion is reachable with 1,500
// connections; it must refuse the attacker past its caps with "too many
// connections", and still accept another tenant and the operator.
func TestAttackConnIdleFlood(t *testing.T) {
	totals.Runs.Add(1)
	const nofile, attempts = 1024, 1500
	n := startAttackNode(t, nil, nofile)
	ctx := t.Context()
	admin := n.openAs(t, n.token, nil)
	victimTok := tenantToken(t, admin, "victim", nil)
	attackTok := tenantToken(t, admin, "attacker", nil)
	base := n.rss()

	var open []*rawConn
	defer func() {
		for _, rc := range open {
			rc.Close()
		}
	}()
	flood := func(limit int) (refused int, refusal string, other error) {
		for range limit {
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			rc, resp, err := loginRaw(dctx, n.listen, attackTok)
			cancel()
			totals.Attacks.Add(1)
			switch {
			case err == nil:
				open = append(open, rc)
			case resp != nil:
				refused++
				refusal = fmt.Sprintf("%s: %s", resp.Code, resp.Msg)
			default:
				other = err
				return refused, refusal, other
			}
		}
		return refused, refusal, nil
	}
	refused, refusal, other := flood(attempts)
	t.Logf("RLIMIT_NOFILE %d: %d of %d idle connections of one tenant accepted, %d refused (%q), then %v; node RSS %d → %d MiB",
		nofile, len(open), attempts, refused, refusal, other, base>>20, n.rss()>>20)
	if refused == 0 || !strings.Contains(refusal, "too many connections") {
		t.Errorf("the node accepted %d idle connections of one tenant and refused none with \"too many connections\" (last error %v)", len(open), other)
	}
	// Another tenant and the operator still connect and are served.
	served := func(who, token string) {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		db, err := client.Open(cctx, []string{n.listen}, &client.Options{Token: token, DialTimeout: 5 * time.Second})
		if err == nil {
			defer db.Close()
			if who == "victim" {
				err = db.Tenant("").Set(cctx, []byte("k"), []byte("v"))
			} else {
				_, err = db.ListTenants(cctx)
			}
		}
		if err != nil {
			t.Errorf("%s not served while one tenant holds %d idle connections: %v", who, len(open), err)
		}
	}
	served("victim", victimTok)
	served("operator", n.token)
	attackConnPhase2(t, n, admin, attackTok, &open, flood, served)
	if s := n.stderr.String(); strings.Contains(s, "too many open files") {
		t.Errorf("the node ran out of file descriptors: %s", tailOf(s[strings.Index(s, "too many open files")-200:], 400))
	}
}

// TestAttackConnIdleTimeout: an authenticated connection that sends
// nothing is closed after the idle timeout, while an idle connection of the
// official client stays open thanks to its keepalive pings. Before the fix
// an idle connection stayed open for ever.
func TestAttackConnIdleTimeout(t *testing.T) {
	totals.Runs.Add(1)
	const idle = 2 * time.Second
	n := startAttackNode(t, map[string]string{"TENANTKV_IDLE_TIMEOUT": idle.String()}, 0)
	ctx := t.Context()
	admin := n.openAs(t, n.token, nil)
	tok := tenantToken(t, admin, "app", nil)
	logs := &lockedBuffer{}
	db := n.openAs(t, tok, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err := db.Tenant("").Set(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	rc, _, err := loginRaw(ctx, n.listen, tok)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	totals.Attacks.Add(1)
	start := time.Now()
	_, closed := waitClosed(rc.nc, idle+10*time.Second)
	t.Logf("idle timeout %v: an idle raw connection closed %v after %v", idle, closed, time.Since(start).Round(100*time.Millisecond))
	if !closed {
		t.Errorf("an idle authenticated connection is still open %v after its last request (idle timeout %v)", time.Since(start).Round(time.Second), idle)
	}
	// The official client's connection was idle as long: it must have
	// stayed up, pinging, and still serve without dialling again.
	pause(ctx, max(0, 3*idle-time.Since(start)))
	if _, err := db.Tenant("").Get(ctx, []byte("k")); err != nil {
		t.Fatal(err)
	}
	if c := strings.Count(logs.String(), "tenantkv: connected"); c != 1 {
		t.Errorf("the client connected %d times over %v of idleness; want once (keepalive pings keep it open): %s",
			c, time.Since(start).Round(time.Second), logs.String())
	}
	if strings.Contains(logs.String(), "connection broke") {
		t.Errorf("the idle client connection broke: %s", logs.String())
	}
}

var _ = net.Dial

// attackConnPhase2 lifts the attacker's tenant cap with its
// max_connections limit, so that it fills the node: new tenant
// connections are then refused, but the operator still gets in (its
// reserve), and the node still has descriptors.
func attackConnPhase2(t *testing.T, n *attackNode, admin *client.DB, attackTok string, open *[]*rawConn,
	flood func(int) (int, string, error), served func(string, string)) {
	t.Helper()
	lots := uint64(100_000)
	if _, err := admin.UpdateTenant(t.Context(), "attacker", &client.TenantUpdate{MaxConnections: &lots}); err != nil {
		t.Fatal(err)
	}
	before := len(*open)
	refused, refusal, other := flood(1000)
	t.Logf("max_connections %d for the attacker: %d more accepted (%d in all), %d refused (%q), then %v",
		lots, len(*open)-before, len(*open), refused, refusal, other)
	if refused == 0 || !strings.Contains(refusal, "too many connections") {
		t.Errorf("the node took %d connections of one tenant and refused none past its cap (last error %v)", len(*open), other)
	}
	served("operator", n.token)
}
