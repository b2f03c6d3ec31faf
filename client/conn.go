package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// conn is one authenticated connection to one node, multiplexing any number
// of concurrent requests. Callers encode their frame, append it to a shared
// queue and wait; one writer goroutine writes everything queued in a single
// write, and one reader goroutine hands each response to the caller waiting
// for its ID. Responses may come in any order.
//
// Whether a request may have reached the server is tracked with generations:
// a call records the queue generation it was appended to, and the writer
// bumps the generation each time it takes the queue. A call whose generation
// is still current when the connection fails was never handed to the network.
type conn struct {
	addr     string
	nc       net.Conn
	fr       *wire.FrameReader
	maxFrame int
	wg       *sync.WaitGroup // the DB's; counts the reader and writer

	nodeID   string // from the hello
	operator bool
	tenant   string
	// keepAlive is how often the writer pings a connection it has written
	// nothing to, a third of the idle timeout the node announced in its
	// hello; zero (a node without one) means never.
	keepAlive time.Duration

	nextID atomic.Uint64
	broken atomic.Bool   // set by fail; read without the lock on every request
	wake   chan struct{} // cap 1: the queue went from empty to non-empty
	done   chan struct{} // closed when the connection fails

	mu      sync.Mutex
	pending map[uint64]*call
	queue   []byte // frames not yet taken by the writer
	spare   []byte // the writer's previous buffer, reused for the queue
	gen     uint64 // generation of queue; bumped when the writer takes it
	err     error  // why the connection failed; nil while it works
}

// call is one request in flight. Calls are pooled: a caller owns its call
// from getCall until putCall, and makes sure no other goroutine still refers
// to it (the reader and fail only touch calls they removed from pending, and
// they signal done exactly once).
type call struct {
	req  wire.Request  // a copy of the caller's, so that theirs stays on the stack
	buf  []byte        // the encoded frame
	done chan struct{} // cap 1; signalled when resp or err is set
	id   uint64
	gen  uint64
	resp wire.Response
	err  error
}

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

func getCall() *call { return callPool.Get().(*call) }

func putCall(cl *call) {
	cl.req = wire.Request{}
	cl.resp = wire.Response{}
	cl.err = nil
	if cap(cl.buf) > 64<<10 {
		cl.buf = nil
	}
	cl.buf = cl.buf[:0]
	callPool.Put(cl)
}

// dialConn dials addr, performs the TLS handshake if configured and the
// hello, and returns a connection whose goroutines are not yet started. A
// hello answered with an error code returns an *Error. ctx bounds the whole.
func dialConn(ctx context.Context, addr string, o *Options) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if o.TLS != nil {
		cfg := o.TLS
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			if host, _, err := net.SplitHostPort(addr); err == nil {
				cfg.ServerName = host
			} else {
				cfg.ServerName = addr
			}
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		nc = tc
	}
	c, err := hello(ctx, nc, addr, o)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// hello authenticates nc. It runs before the connection's goroutines exist,
// so it reads and writes nc directly, bounded by ctx.
func hello(ctx context.Context, nc net.Conn, addr string, o *Options) (*conn, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	frame, err := wire.AppendRequestFrame(nil, &wire.Request{
		ID: 1, Op: wire.OpHello, Version: wire.ProtocolVersion, Token: o.Token,
	})
	if err != nil {
		return nil, err
	}
	if _, err := nc.Write(frame); err != nil {
		return nil, ctxOr(ctx, fmt.Errorf("hello: %w", err))
	}
	fr := wire.NewFrameReader(nc)
	body, err := fr.Read(o.MaxFrame)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("closed by server: %w", err)
		}
		return nil, ctxOr(ctx, fmt.Errorf("hello: %w", err))
	}
	var resp wire.Response
	if err := wire.DecodeResponse(body, &resp); err != nil {
		return nil, &protocolError{err: err}
	}
	if resp.Code != wire.CodeOK {
		return nil, errorOf(&resp)
	}
	if resp.ID != 1 {
		return nil, &protocolError{err: fmt.Errorf("hello answered with id %d", resp.ID)}
	}
	if !stop() {
		return nil, ctx.Err()
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	c := &conn{
		addr:     addr,
		nc:       nc,
		fr:       fr,
		maxFrame: o.MaxFrame,
		nodeID:   resp.NodeID,
		operator: resp.Operator,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		pending:  make(map[uint64]*call),
	}
	if resp.Tenant != nil {
		c.tenant = resp.Tenant.Name
	}
	if resp.IdleTimeout > 0 {
		c.keepAlive = max(resp.IdleTimeout/3, 10*time.Millisecond)
	}
	c.nextID.Store(1) // the hello used 1
	return c, nil
}

// ctxOr returns ctx's error if it ended (an expired deadline shows up as an
// I/O timeout on the connection), else err.
func ctxOr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w: %v", cerr, err)
	}
	return err
}

// start launches the reader and writer; wg counts them.
func (c *conn) start(wg *sync.WaitGroup) {
	c.wg = wg
	wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
}

// alive reports whether the connection has not failed.
func (c *conn) alive() bool { return !c.broken.Load() }

// roundTrip sends req (with an ID of its own) and waits for the answer,
// which it stores in resp. It returns a *connError when the connection
// failed (with sent telling whether the frame may have reached the server),
// a *sentCtxError when ctx ended after the frame was queued, and ctx.Err()
// when it ended before.
func (c *conn) roundTrip(ctx context.Context, req *wire.Request, resp *wire.Response) error {
	cl := getCall()
	defer putCall(cl)
	cl.req = *req
	cl.req.ID = c.nextID.Add(1)
	var err error
	cl.buf, err = wire.AppendRequestFrame(cl.buf[:0], &cl.req)
	if err != nil {
		return fmt.Errorf("%w: encode request: %v", ErrInvalidArgument, err)
	}
	if n := len(cl.buf) - wire.HeaderLen; n > c.maxFrame {
		return fmt.Errorf("%w: request of %d bytes exceeds MaxFrame %d", ErrInvalidArgument, n, c.maxFrame)
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return &connError{addr: c.addr, err: err}
	}
	cl.id, cl.gen = cl.req.ID, c.gen
	c.pending[cl.id] = cl
	wasEmpty := len(c.queue) == 0
	c.queue = append(c.queue, cl.buf...)
	c.mu.Unlock()
	if wasEmpty {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}

	select {
	case <-cl.done:
	case <-ctx.Done():
		c.mu.Lock()
		if c.pending[cl.id] == cl {
			delete(c.pending, cl.id) // a late answer will be dropped
			c.mu.Unlock()
			return &sentCtxError{err: ctx.Err()}
		}
		c.mu.Unlock()
		<-cl.done // the answer or the failure is being handed over right now
	}
	if cl.err != nil {
		return cl.err
	}
	*resp = cl.resp
	return nil
}

// sentCtxError: the context ended after the request was queued, so it may
// still reach the server.
type sentCtxError struct{ err error }

func (e *sentCtxError) Error() string { return e.err.Error() }
func (e *sentCtxError) Unwrap() error { return e.err }

// writeLoop writes whatever is queued, all of it in one write, until the
// connection fails.
//
// On a connection it has written nothing to for keepAlive, it writes a
// ping, so that the node does not close it as idle. The ping has an ID no
// call waits for: the reader drops its answer.
func (c *conn) writeLoop() {
	defer c.wg.Done()
	var tick <-chan time.Time
	if c.keepAlive > 0 {
		t := time.NewTicker(c.keepAlive)
		defer t.Stop()
		tick = t.C
	}
	wrote := false // since the last tick
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		case <-tick:
			if wrote {
				wrote = false
				continue
			}
			ping, _ := wire.AppendRequestFrame(nil, &wire.Request{ID: c.nextID.Add(1), Op: wire.OpPing})
			if _, err := c.nc.Write(ping); err != nil {
				c.fail(err)
				return
			}
			continue
		}
		wrote = true
		c.mu.Lock()
		if c.err != nil {
			c.mu.Unlock()
			return
		}
		buf := c.queue
		c.queue, c.spare = c.spare[:0], nil
		if len(buf) > 0 {
			c.gen++
		}
		c.mu.Unlock()
		if len(buf) == 0 {
			continue
		}
		n, err := c.nc.Write(buf)
		if err != nil {
			if n == 0 {
				// Not one byte left: the taken frames certainly did not
				// reach the server. Nothing else changes gen, so undoing
				// the bump makes fail see them as never sent.
				c.mu.Lock()
				c.gen--
				c.mu.Unlock()
			}
			c.fail(err)
			return
		}
		if cap(buf) <= 1<<20 {
			c.mu.Lock()
			c.spare = buf[:0]
			c.mu.Unlock()
		}
	}
}

// readLoop hands each response to its caller until the connection fails.
// Answers for calls that gave up are dropped.
func (c *conn) readLoop() {
	defer c.wg.Done()
	var resp wire.Response
	for {
		body, err := c.fr.Read(c.maxFrame)
		if err != nil {
			if errors.Is(err, wire.ErrFrameTooLarge) {
				err = &protocolError{err: err}
			}
			c.fail(err)
			return
		}
		if err := wire.DecodeResponse(body, &resp); err != nil {
			c.fail(&protocolError{err: err})
			return
		}
		c.mu.Lock()
		cl := c.pending[resp.ID]
		delete(c.pending, resp.ID)
		c.mu.Unlock()
		if cl == nil {
			continue
		}
		cl.resp = resp
		cl.done <- struct{}{}
	}
}

// fail marks the connection failed with err (the first cause wins), closes
// it, and fails every call in flight. Calls still in the current queue
// generation were never written and are reported as not sent.
func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	c.broken.Store(true)
	pending := c.pending
	c.pending = nil
	gen := c.gen
	c.queue = nil
	close(c.done)
	c.mu.Unlock()
	_ = c.nc.Close()
	for _, cl := range pending {
		cl.err = &connError{addr: c.addr, err: err, sent: cl.gen < gen}
		cl.done <- struct{}{}
	}
}
