package proof

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/client"
	"github.com/tenantkv/tenantkv/internal/wire"
)

// helloTimeout is the server's deadline for a connection to authenticate
// (server/conn.go); tests wait for it with a margin.
const helloTimeout = 10 * time.Second

// heapInuse returns the heap in use after a full collection.
func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// fdBudget returns how many more file descriptors this process may open,
// keeping a margin for the node, the clients and the test itself.
func fdBudget() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 1000
	}
	return int(rl.Cur) - 1000
}

// goodClient is a well-behaved tenant client that keeps writing and reading
// back while the node is under attack. Every operation must succeed.
type goodClient struct {
	ops     atomic.Int64
	mu      sync.Mutex
	errs    []error
	slowest time.Duration
	stop    chan struct{}
	done    chan struct{}
}

func startGoodClient(t *testing.T, db *client.DB) *goodClient {
	g := &goodClient{stop: make(chan struct{}), done: make(chan struct{})}
	tn := db.Tenant("")
	go func() {
		defer close(g.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-g.stop:
				return
			case <-tick.C:
			}
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			k, v := fmt.Appendf(nil, "good/%d", i%100), fmt.Appendf(nil, "v%d", i)
			err := tn.Set(ctx, k, v)
			if err == nil {
				var got []byte
				got, err = tn.Get(ctx, k)
				if err == nil && string(got) != string(v) {
					err = fmt.Errorf("read back %q after writing %q", got, v)
				}
			}
			cancel()
			d := time.Since(start)
			g.mu.Lock()
			g.slowest = max(g.slowest, d)
			if err != nil {
				g.errs = append(g.errs, err)
			}
			g.mu.Unlock()
			g.ops.Add(1)
		}
	}()
	return g
}

// finish stops the client and fails t if any of its operations failed.
func (g *goodClient) finish(t *testing.T) {
	t.Helper()
	close(g.stop)
	<-g.done
	g.mu.Lock()
	defer g.mu.Unlock()
	t.Logf("well-behaved client: %d set+get pairs, slowest %v, %d errors", g.ops.Load(), g.slowest.Round(time.Millisecond), len(g.errs))
	for i, err := range g.errs {
		if i == 5 {
			t.Errorf("… and %d more", len(g.errs)-5)
			break
		}
		t.Errorf("well-behaved client failed under attack: %v", err)
	}
	if g.ops.Load() < 10 {
		t.Errorf("well-behaved client completed only %d operations", g.ops.Load())
	}
}

// attackers holds the hostile connections of a test, to close them at the
// end and to wait for their goroutines.
type attackers struct {
	mu       sync.Mutex
	conns    []net.Conn
	wg       sync.WaitGroup
	stop     chan struct{}
	stopOnce sync.Once
}

func newAttackers() *attackers { return &attackers{stop: make(chan struct{})} }

func (a *attackers) keep(c net.Conn) {
	a.mu.Lock()
	a.conns = append(a.conns, c)
	a.mu.Unlock()
	totals.Attacks.Add(1)
}

func (a *attackers) go_(f func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		f()
	}()
}

func (a *attackers) closeAll() {
	a.stopOnce.Do(func() { close(a.stop) })
	a.mu.Lock()
	for _, c := range a.conns {
		c.Close()
	}
	a.conns = nil
	a.mu.Unlock()
	a.wg.Wait()
}

// trickle writes b one byte every interval until it is written, the
// connection fails or the attack stops. It reports whether all was written.
func (a *attackers) trickle(c net.Conn, b []byte, interval time.Duration) bool {
	t := time.NewTicker(interval)
	defer t.Stop()
	for i := range b {
		select {
		case <-a.stop:
			return false
		case <-t.C:
		}
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(b[i : i+1]); err != nil {
			return false
		}
	}
	return true
}

// waitClosed reads c until the server closes it or the deadline passes.
// It returns what the server sent and whether it closed the connection.
func waitClosed(c net.Conn, within time.Duration) ([]byte, bool) {
	_ = c.SetReadDeadline(time.Now().Add(within))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return b, false
	}
	return b, true
}

// frame wraps body in a frame header.
func frame(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// firstResponse decodes the first frame of b.
func firstResponse(b []byte) (*wire.Response, error) {
	if len(b) < wire.HeaderLen {
		return nil, fmt.Errorf("%d bytes, no frame", len(b))
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(len(b)-wire.HeaderLen) < uint64(n) {
		return nil, fmt.Errorf("truncated frame")
	}
	var resp wire.Response
	if err := wire.DecodeResponse(b[wire.HeaderLen:wire.HeaderLen+int(n)], &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// TestHostileInput attacks one node at the protocol level: thousands of idle
// connections before and after authentication, slow-loris writers, frames
// claiming 4 GiB, truncated frames, random garbage, msgpack bombs and a
// client that never reads its answers. Meanwhile a well-behaved client must
// keep getting answers; the node's heap must stay within a generous bound
// under attack, and go back down, with its goroutines, once the attackers
// leave.
func TestHostileInput(t *testing.T) { runHostile(t) }

func runHostile(t *testing.T) {
	totals.Runs.Add(1)
	c := newCluster(t, 1)
	addr := c.nodes[0].listen
	ctx := t.Context()
	for _, n := range []string{"victim", "attacker"} {
		if _, err := c.admin.CreateTenant(ctx, n, nil); err != nil {
			t.Fatal(err)
		}
	}
	victimTok, err := c.admin.NewTenantToken(ctx, "victim")
	if err != nil {
		t.Fatal(err)
	}
	attackTok, err := c.admin.NewTenantToken(ctx, "attacker")
	if err != nil {
		t.Fatal(err)
	}
	good, err := client.Open(ctx, []string{addr}, &client.Options{Token: victimTok})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	// Warm up the good client's connection before the baseline.
	if err := good.Tenant("").Set(ctx, []byte("warm"), []byte("up")); err != nil {
		t.Fatal(err)
	}
	baseHeap := heapInuse()
	baseG := runtime.NumGoroutine()
	g := startGoodClient(t, good)
	a := newAttackers()
	defer a.closeAll()
	rng := rand.New(rand.NewPCG(testSeed(t), 1))

	// Idle connections: each in-process connection costs two descriptors.
	idle := 2000
	if budget := fdBudget()/2 - 600; budget < idle {
		t.Logf("file descriptor limit: %d idle connections instead of %d", max(budget, 100), idle)
		idle = max(budget, 100)
	}
	var preAuthIdle []net.Conn
	for i := range idle {
		if i%2 == 0 {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("idle connection %d: %v", i, err)
			}
			a.keep(nc)
			preAuthIdle = append(preAuthIdle, nc)
			continue
		}
		rc, _, err := loginRaw(ctx, addr, attackTok)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		a.keep(rc.nc)
	}
	idleAt := time.Now()
	idleHeap := heapInuse()
	t.Logf("%d idle connections open (%d before hello, %d authenticated): heap %+d MiB, %d KiB a connection",
		idle, len(preAuthIdle), idle-len(preAuthIdle), (int64(idleHeap)-int64(baseHeap))>>20, (int64(idleHeap)-int64(baseHeap))/int64(idle)>>10)

	// Slow-loris before hello: a hello too slow to finish within the hello
	// deadline must be cut off.
	hello, err := wire.AppendRequestFrame(nil, &wire.Request{ID: 1, Op: wire.OpHello, Version: wire.ProtocolVersion, Token: attackTok + string(make([]byte, 150))})
	if err != nil {
		t.Fatal(err)
	}
	var lorisCut atomic.Int64
	const lorisConns = 20
	for range lorisConns {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		a.keep(nc)
		a.go_(func() {
			if !a.trickle(nc, hello, 100*time.Millisecond) {
				lorisCut.Add(1)
			}
		})
	}
	// Slow-loris after hello: a request a byte at a time.
	set, err := wire.AppendRequestFrame(nil, &wire.Request{ID: 2, Op: wire.OpSet, Key: []byte("slow"), Value: make([]byte, 500)})
	if err != nil {
		t.Fatal(err)
	}
	for range lorisConns {
		rc, _, err := loginRaw(ctx, addr, attackTok)
		if err != nil {
			t.Fatal(err)
		}
		a.keep(rc.nc)
		a.go_(func() { a.trickle(rc.nc, set, 100*time.Millisecond) })
	}

	// Frames claiming 4 GiB, before and after hello: refused with a clear
	// error, connection closed.
	for i := range 100 {
		var nc net.Conn
		if i%2 == 0 {
			if nc, err = net.Dial("tcp", addr); err != nil {
				t.Fatal(err)
			}
		} else {
			rc, _, err := loginRaw(ctx, addr, attackTok)
			if err != nil {
				t.Fatal(err)
			}
			nc = rc.nc
		}
		a.keep(nc)
		if _, err := nc.Write([]byte{0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		b, closed := waitClosed(nc, 10*time.Second)
		resp, err := firstResponse(b)
		if err != nil || resp.Code != wire.CodeFrameTooLarge || !closed {
			t.Errorf("4 GiB frame (authenticated %v): answer %+v (%v), closed %v; want frame too large and a closed connection", i%2 == 1, resp, err, closed)
		}
	}

	// Truncated frames: the header claims more than is ever sent.
	for i := range 200 {
		var nc net.Conn
		if i%2 == 0 {
			if nc, err = net.Dial("tcp", addr); err != nil {
				t.Fatal(err)
			}
		} else {
			rc, _, err := loginRaw(ctx, addr, attackTok)
			if err != nil {
				t.Fatal(err)
			}
			nc = rc.nc
		}
		a.keep(nc)
		full, _ := wire.AppendRequestFrame(nil, &wire.Request{ID: 9, Op: wire.OpSet, Key: []byte("k"), Value: make([]byte, 1000)})
		_, _ = nc.Write(full[:4+rng.IntN(len(full)-5)])
		if i%4 < 2 {
			nc.Close() // half close at once, half leave it hanging
		}
	}

	// Random garbage, before and after hello. The node answers or closes;
	// it must not crash or stop serving others.
	for i := range 200 {
		var nc net.Conn
		if i%2 == 0 {
			if nc, err = net.Dial("tcp", addr); err != nil {
				t.Fatal(err)
			}
		} else {
			rc, _, err := loginRaw(ctx, addr, attackTok)
			if err != nil {
				t.Fatal(err)
			}
			nc = rc.nc
		}
		a.keep(nc)
		junk := make([]byte, 1+rng.IntN(8<<10))
		for j := range junk {
			junk[j] = byte(rng.UintN(256))
		}
		if i%3 == 0 {
			junk = frame(junk[:min(len(junk), 1<<10)]) // a well-formed frame of garbage
		}
		_, _ = nc.Write(junk)
	}

	// Msgpack bombs inside well-formed frames, after hello: each must be
	// answered with "bad request" and leave the connection usable.
	bombs := map[string][]byte{
		"deep nesting":       bytesOf(0x91, 100_000),
		"array of 2^32-1":    {0xdd, 0xff, 0xff, 0xff, 0xff},
		"map of 2^32-1":      {0xdf, 0xff, 0xff, 0xff, 0xff},
		"str of 4 GiB":       {0x81, 0xa1, 'k', 0xdb, 0xff, 0xff, 0xff, 0xff},
		"bin of 4 GiB":       {0x81, 0xa1, 'k', 0xc6, 0xff, 0xff, 0xff, 0xff},
		"ext of 4 GiB":       {0x81, 0xa1, 'k', 0xc9, 0xff, 0xff, 0xff, 0xff, 1},
		"never-used byte":    {0xc1},
		"nil time":           {0x81, 0xa3, 't', 't', 'l', 0xc0},
		"wrong type for id":  {0x81, 0xa1, 'i', 0xa3, 'x', 'y', 'z'},
		"negative limit":     {0x83, 0xa1, 'i', 0x05, 0xa1, 'o', 0x0e, 0xa1, 'l', 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0},
		"mutations of nils":  {0x83, 0xa1, 'i', 0x06, 0xa1, 'o', 0x0f, 0xa2, 'm', 'u', 0x93, 0xc0, 0xc0, 0xc0},
		"map with 1000 keys": manyKeys(1000),
	}
	rc, _, err := loginRaw(ctx, addr, attackTok)
	if err != nil {
		t.Fatal(err)
	}
	a.keep(rc.nc)
	for name, body := range bombs {
		resp, _, err := rc.send(frame(body))
		if err != nil {
			t.Fatalf("msgpack bomb %q: the connection broke: %v", name, err)
		}
		if resp.Code == wire.CodeInternal {
			t.Errorf("msgpack bomb %q: answered %s: %s", name, resp.Code, resp.Msg)
		}
		if resp, _, err := rc.call(&wire.Request{Op: wire.OpPing}); err != nil || resp.Code != wire.CodeOK {
			t.Fatalf("after msgpack bomb %q the connection does not answer a ping: %v %+v", name, err, resp)
		}
	}

	// A client that floods requests and never reads the answers: the node
	// stops reading it (at most 256 requests in flight) instead of
	// buffering without end.
	flood, _, err := loginRaw(ctx, addr, attackTok)
	if err != nil {
		t.Fatal(err)
	}
	a.keep(flood.nc)
	a.go_(func() {
		var buf []byte
		for i := range 200 {
			buf, _ = wire.AppendRequestFrame(buf, &wire.Request{ID: uint64(i + 10), Op: wire.OpGet, Key: []byte("good/1")})
		}
		for {
			select {
			case <-a.stop:
				return
			default:
			}
			_ = flood.nc.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := flood.nc.Write(buf); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue // the node pushes back: good
				}
				return
			}
		}
	})

	// Unauthenticated idle connections are closed at the hello deadline.
	for _, nc := range preAuthIdle {
		if _, closed := waitClosed(nc, time.Until(idleAt.Add(helloTimeout+10*time.Second))); !closed {
			t.Errorf("an idle connection that never said hello is still open %v after it was made", time.Since(idleAt).Round(time.Second))
			break
		}
	}
	// So are the slow-loris hellos (they needed ~20 s to finish).
	lorisCtx, cancel := context.WithTimeout(ctx, helloTimeout+10*time.Second)
	defer cancel()
	if err := poll(lorisCtx, func() error {
		if n := lorisCut.Load(); n < lorisConns {
			return fmt.Errorf("%d of %d slow hellos cut off", n, lorisConns)
		}
		return nil
	}); err != nil {
		t.Errorf("slow-loris hellos: %v", err)
	}

	// Memory under attack: the idle, slow and flooding connections are all
	// still open here. The bound is generous (128 KiB a connection plus
	// 64 MiB); the measured cost is logged.
	underAttack := heapInuse()
	growth := int64(underAttack) - int64(baseHeap)
	bound := int64(idle)*128<<10 + 64<<20
	t.Logf("heap in use: %d MiB before, %d MiB under attack (%+d MiB; bound %d MiB)",
		baseHeap>>20, underAttack>>20, growth>>20, bound>>20)
	if growth > bound {
		t.Errorf("heap grew by %d MiB under attack, more than the bound of %d MiB", growth>>20, bound>>20)
	}

	a.closeAll()
	g.finish(t)

	// Once the attackers are gone, so are their goroutines and memory.
	leakCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := poll(leakCtx, func() error {
		if n := runtime.NumGoroutine(); n > baseG+20 {
			return fmt.Errorf("%d goroutines, %d before the attack", n, baseG)
		}
		return nil
	}); err != nil {
		t.Errorf("goroutines leaked by the attack: %v", err)
	}
	after := heapInuse()
	t.Logf("heap in use after the attack: %d MiB", after>>20)
	if int64(after)-int64(baseHeap) > 32<<20 {
		t.Errorf("heap still %d MiB above its level before the attack", (int64(after)-int64(baseHeap))>>20)
	}
}

func bytesOf(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

// manyKeys is a msgpack map of n distinct unknown keys.
func manyKeys(n int) []byte {
	b := []byte{0xde, byte(n >> 8), byte(n)}
	for i := range n {
		k := fmt.Sprintf("x%04d", i)
		b = append(b, 0xa0|byte(len(k)))
		b = append(b, k...)
		b = append(b, 0x00)
	}
	return b
}

// TestHostileFrameClaimsAreNotPreallocated checks that a frame header alone
// does not make the node allocate the body it announces. An authenticated
// client (any tenant token, even read-only) that sends a header announcing a
// body of the maximum size (16 MiB) and then one byte must not cost the node
// 16 MiB for as long as it keeps the connection open: 4 bytes of input
// would buy 16 MiB of memory, and a few hundred connections would exhaust
// the node's memory.
func TestHostileFrameClaimsAreNotPreallocated(t *testing.T) {
	c := newCluster(t, 1)
	addr := c.nodes[0].listen
	ctx := t.Context()
	if _, err := c.admin.CreateTenant(ctx, "attacker", nil); err != nil {
		t.Fatal(err)
	}
	tok, err := c.admin.NewTenantToken(ctx, "attacker")
	if err != nil {
		t.Fatal(err)
	}
	const conns = 32
	var open []*rawConn
	defer func() {
		for _, rc := range open {
			rc.Close()
		}
	}()
	for range conns {
		rc, _, err := loginRaw(ctx, addr, tok)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, rc)
	}
	before := heapInuse()
	for _, rc := range open {
		hdr := binary.BigEndian.AppendUint32(nil, wire.DefaultMaxFrame)
		if _, err := rc.nc.Write(append(hdr, 0x8f)); err != nil {
			t.Fatal(err)
		}
		totals.Attacks.Add(1)
	}
	// The node reads a header as soon as it arrives; give it a few seconds
	// to show the growth (a fixed node never shows it).
	var growth int64
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_ = poll(pctx, func() error {
		growth = int64(heapInuse()) - int64(before)
		if growth > int64(conns)<<20 {
			return nil
		}
		return errors.New("not grown")
	})
	t.Logf("%d connections that each sent a 16 MiB frame header and one byte: heap %+d MiB (%d KiB per connection)",
		conns, growth>>20, growth/conns>>10)
	if growth > int64(conns)<<20 {
		totals.Violations.Add(1)
		t.Errorf("MEMORY AMPLIFICATION: %d authenticated connections that each sent 5 bytes made the node allocate %d MiB "+
			"(%d KiB each): wire.FrameReader.Read allocates the announced body size before any of it arrives, and "+
			"the connection has no read deadline after hello, so the memory is held as long as the client likes",
			conns, growth>>20, growth/conns>>10)
	}
}

// FuzzNodeInput sends arbitrary bytes to a live node, before or after
// hello, and checks that no answer is an internal error and that the node
// still answers a well-behaved connection afterwards. It drives every
// decoder a client reaches (frames, messages, every operation's fields)
// through the real server. `make fuzz` explores; `go test` runs the seeds.
func FuzzNodeInput(f *testing.F) {
	c := newCluster(f, 1)
	addr := c.nodes[0].listen
	ctx := context.Background()
	if _, err := c.admin.CreateTenant(ctx, "fuzz", nil); err != nil {
		f.Fatal(err)
	}
	tok, err := c.admin.NewTenantToken(ctx, "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	good, _, err := loginRaw(ctx, addr, c.token)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { good.Close() })
	seed := func(auth bool, reqs ...*wire.Request) {
		var b []byte
		for _, r := range reqs {
			b, _ = wire.AppendRequestFrame(b, r)
		}
		f.Add(auth, b)
	}
	seed(true, &wire.Request{ID: 1, Op: wire.OpSet, Key: []byte("k"), Value: []byte("v")}, &wire.Request{ID: 2, Op: wire.OpGet, Key: []byte("k")})
	seed(true, &wire.Request{ID: 3, Op: wire.OpScan, Key: []byte("a"), End: []byte("z"), Limit: -1, Reverse: true})
	seed(true, &wire.Request{ID: 4, Op: wire.OpBatch, Muts: []wire.Mutation{{Kind: wire.MutDeleteRange}, {Kind: 9}}})
	seed(true, &wire.Request{ID: 5, Op: wire.OpCompareAndSwap, Key: []byte("k"), Expect: []byte("v"), Flags: 3})
	seed(true, &wire.Request{ID: 6, Op: wire.OpCommit, ReadVersion: 1 << 60, TenantID: 99, Reads: []wire.KeyRange{{Start: []byte("b"), End: []byte("a")}}})
	seed(true, &wire.Request{ID: 7, Op: wire.OpWatch, Wait: time.Millisecond, Key: []byte("b"), End: []byte("a")})
	seed(true, &wire.Request{ID: 9, Op: wire.OpCreateTenant, Name: "x"}, &wire.Request{ID: 10, Op: 200})
	seed(false, &wire.Request{ID: 1, Op: wire.OpHello, Version: wire.ProtocolVersion, Token: tok})
	f.Add(false, []byte{0xFF, 0xFF, 0xFF, 0xFF})
	f.Add(true, frame(bytesOf(0x91, 1000)))
	f.Add(true, frame([]byte{0xdf, 0xff, 0xff, 0xff, 0xff}))
	f.Add(true, []byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, authenticated bool, data []byte) {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var nc net.Conn
		if authenticated {
			rc, _, err := loginRaw(fctx, addr, tok)
			if err != nil {
				t.Fatalf("hello: %v", err)
			}
			nc = rc.nc
		} else {
			if nc, err = net.Dial("tcp", addr); err != nil {
				t.Fatal(err)
			}
		}
		defer nc.Close()
		totals.Attacks.Add(1)
		_ = nc.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = nc.Write(data)
		_ = nc.(*net.TCPConn).CloseWrite()
		out, _ := io.ReadAll(nc)
		for len(out) >= wire.HeaderLen {
			n := int(binary.BigEndian.Uint32(out))
			if len(out) < wire.HeaderLen+n {
				break
			}
			var resp wire.Response
			if err := wire.DecodeResponse(out[wire.HeaderLen:wire.HeaderLen+n], &resp); err != nil {
				t.Fatalf("the node sent an undecodable answer: %v", err)
			}
			if resp.Code == wire.CodeInternal {
				t.Errorf("input %q got an internal error", data)
			}
			out = out[wire.HeaderLen+n:]
		}
		good.timeout = 10 * time.Second
		if resp, _, err := good.call(&wire.Request{Op: wire.OpPing}); err != nil || resp.Code != wire.CodeOK {
			t.Fatalf("after input %q the node does not answer a ping: %v %+v", data, err, resp)
		}
	})
}
