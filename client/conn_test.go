package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// testConn wraps one end of a pipe, counting writes and failing them on
// demand.
type testConn struct {
	net.Conn
	mu       sync.Mutex
	writes   int
	writeErr error // when set, Write writes writeN bytes and fails
	writeN   int
}

func (c *testConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	err, n := c.writeErr, c.writeN
	c.mu.Unlock()
	if err != nil {
		return min(n, len(b)), err
	}
	return c.Conn.Write(b)
}

// pipeConn returns a started conn over nc, as if the hello had succeeded.
func pipeConn(t *testing.T, nc net.Conn) *conn {
	c := &conn{addr: "pipe", nc: nc, fr: wire.NewFrameReader(nc), maxFrame: wire.DefaultMaxFrame,
		wake: make(chan struct{}, 1), done: make(chan struct{}), pending: make(map[uint64]*call)}
	c.nextID.Store(1)
	var wg sync.WaitGroup
	c.start(&wg)
	t.Cleanup(func() {
		c.fail(ErrClosed)
		wg.Wait()
	})
	return c
}

type keyResult struct {
	key string
	err error
}

// sendAsync starts a Get of key on c and reports its result on out.
func sendAsync(t *testing.T, c *conn, key string, out chan<- keyResult) {
	go func() {
		var resp wire.Response
		err := c.roundTrip(t.Context(), &wire.Request{Op: wire.OpGet, Key: []byte(key)}, &resp)
		out <- keyResult{key, err}
	}()
}

// TestUnsentFramesAreNotSent checks the bookkeeping behind "retry only what
// never reached the server": a frame still queued when its connection fails,
// or whose write failed before a byte went out, is reported as not sent; a
// frame the writer took (it may be on the wire) is reported as sent.
func TestUnsentFramesAreNotSent(t *testing.T) {
	checkGoroutines(t)
	t.Run("queued", func(t *testing.T) {
		cli, srvSide := net.Pipe()
		defer srvSide.Close()
		c := pipeConn(t, cli)
		results := make(chan keyResult, 2)
		// The writer takes the first frame and blocks in Write: a pipe has
		// no buffer and nobody reads. The second frame waits in the queue.
		sendAsync(t, c, "taken", results)
		waitFor(t, "the writer to take the first frame", func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.gen == 1
		})
		sendAsync(t, c, "queued", results)
		waitFor(t, "the second frame to queue", func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return len(c.queue) > 0
		})
		c.fail(errors.New("cut"))
		for range 2 {
			r := <-results
			var ce *connError
			if !errors.As(r.err, &ce) {
				t.Fatalf("%s: %v, want a connection error", r.key, r.err)
			}
			if want := r.key == "taken"; ce.sent != want {
				t.Errorf("%s: sent = %v, want %v", r.key, ce.sent, want)
			}
		}
		// A call on a failed connection is not sent either.
		var resp wire.Response
		err := c.roundTrip(t.Context(), &wire.Request{Op: wire.OpPing}, &resp)
		var ce *connError
		if !errors.As(err, &ce) || ce.sent {
			t.Errorf("roundTrip on a failed connection: %#v", err)
		}
	})
	for _, n := range []int{0, 1} {
		t.Run(fmt.Sprintf("write fails after %d bytes", n), func(t *testing.T) {
			cli, srvSide := net.Pipe()
			defer srvSide.Close()
			c := pipeConn(t, &testConn{Conn: cli, writeErr: errors.New("refused"), writeN: n})
			results := make(chan keyResult, 1)
			sendAsync(t, c, "k", results)
			r := <-results
			var ce *connError
			if !errors.As(r.err, &ce) {
				t.Fatalf("%v, want a connection error", r.err)
			}
			if want := n > 0; ce.sent != want {
				t.Errorf("sent = %v, want %v", ce.sent, want)
			}
		})
	}
}

// TestWriterCoalesces checks that frames queued while the writer is busy go
// out in one write.
func TestWriterCoalesces(t *testing.T) {
	checkGoroutines(t)
	cli, srvSide := net.Pipe()
	defer srvSide.Close()
	tc := &testConn{Conn: cli}
	c := pipeConn(t, tc)
	const n = 50
	results := make(chan keyResult, n)
	for i := range n {
		sendAsync(t, c, fmt.Sprint(i), results)
		if i == 0 {
			waitFor(t, "the writer to block on the first frame", func() bool {
				c.mu.Lock()
				defer c.mu.Unlock()
				return c.gen == 1
			})
		}
	}
	waitFor(t, "every call to queue", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.pending) == n
	})
	// Serve: answer every request, in order.
	go func() {
		fr := wire.NewFrameReader(srvSide)
		for range n {
			body, err := fr.Read(wire.DefaultMaxFrame)
			if err != nil {
				return
			}
			var req wire.Request
			if err := wire.DecodeRequest(body, &req); err != nil {
				return
			}
			frame, _ := wire.AppendResponseFrame(nil, &wire.Response{ID: req.ID, Value: req.Key})
			if _, err := srvSide.Write(frame); err != nil {
				return
			}
		}
	}()
	for range n {
		if r := <-results; r.err != nil {
			t.Fatalf("%s: %v", r.key, r.err)
		}
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.writes != 2 {
		t.Errorf("%d frames took %d writes, want 2 (the first, then the rest at once)", n, tc.writes)
	}
}

func TestResponseTooLarge(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	db, err := Open(t.Context(), []string{srv.addr}, &Options{Token: acmeToken, MaxFrame: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	acme := db.Tenant("acme")
	srv.set(func(s *fakeServer) { s.data["acme"]["big"] = make([]byte, 8<<10) })
	_, err = acme.Get(ctxTimeout(t, 10*time.Second), []byte("big"))
	var pe *protocolError
	if !errors.As(err, &pe) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get of a response over MaxFrame: %v, want a protocol error without retries", err)
	}
	if err := acme.Set(t.Context(), []byte("k"), make([]byte, 8<<10)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Set of a request over MaxFrame: %v", err)
	}
}
