package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/keyspace"
)

const (
	// maxInFlight bounds the requests one connection may have outstanding;
	// the reader stops reading until one finishes, which pushes back on the
	// client through TCP. The bytes they may hold are bounded apart
	// (Config.MaxConnMemory).
	maxInFlight = 256
	// helloTimeout bounds how long a connection may take to authenticate.
	helloTimeout = 10 * time.Second
	// frameBodyTimeout bounds how long a frame's body may take to arrive
	// once its header has.
	frameBodyTimeout = 30 * time.Second
)

// What a request reserves for its answer before it runs, by operation: a
// scan or export page holds up to maxScanBytes of keys and values plus a
// last pair and their encoding. A watch reserves little: it may wait for
// long, and reserving its whole possible answer (maxWatchBytes) would
// stall a connection with a few dozen watches; its answer, at most about
// 1 MiB, and the tenant's watches at most MaxWatches, is charged when it
// comes. An answer that turns out larger than its reservation is charged
// as it is.
const (
	pageAnswerReserve  = maxScanBytes + 256<<10
	watchAnswerReserve = 64 << 10
	smallAnswerReserve = 16 << 10
)

func answerReserve(op wire.Op) int64 {
	switch op {
	case wire.OpScan, wire.OpExportTenant, wire.OpSnapshotSave:
		return pageAnswerReserve
	case wire.OpWatch:
		return watchAnswerReserve
	case wire.OpGet:
		return keyspace.MaxValueSize + smallAnswerReserve
	}
	return smallAnswerReserve
}

// conn is one client connection. Its reader goroutine decodes frames and
// starts one goroutine per request (at most maxInFlight at once); its writer
// goroutine coalesces finished responses into as few writes as possible.
//
// Memory: every byte a request holds (its frame, what decoding it
// allocates, its answer, reserved before it runs and adjusted once it is
// encoded, until it is written) is charged to the connection's budget
// (Config.MaxConnMemory) and to the node's (Config.MemoryBudget), taken by
// the reader before it reads further. A client that does not read its
// answers therefore stops being read, and the writer closes it once a
// write has been stuck for Config.WriteTimeout.
type conn struct {
	srv    *Server
	nc     net.Conn
	logger *slog.Logger
	p      *principal

	out        chan []byte   // encoded response frames, closed when no sender is left
	done       chan struct{} // closed when the connection fails
	writerDone chan struct{}
	sem        chan struct{}
	wg         sync.WaitGroup
	failOnce   sync.Once
	mem        *byteBudget     // this connection's bytes
	ctx        context.Context // ends when the connection fails
	cancel     context.CancelFunc
	inFlight   atomic.Int64
	release    func() // uncounts the authenticated connection (connlimits.go)
}

// charge takes n bytes from the connection's budget and the node's,
// waiting for both while holding held bytes of each; it returns what to
// release.
func (c *conn) charge(n, held int64) (int64, error) {
	got, err := c.mem.acquire(c.ctx, n, held)
	if err != nil {
		return 0, err
	}
	// The node's share is the same amount: a request larger than the
	// connection's budget was refused before.
	if _, err := c.srv.mem.acquire(c.ctx, got, held); err != nil {
		c.mem.release(got)
		return 0, err
	}
	return got, nil
}

// uncharge gives n bytes back to both budgets.
func (c *conn) uncharge(n int64) {
	c.mem.release(n)
	c.srv.mem.release(n)
}

// forceCharge takes n bytes from both budgets without waiting.
func (c *conn) forceCharge(n int64) {
	c.mem.force(n)
	c.srv.mem.force(n)
}

func (s *Server) serveConn(ctx context.Context, nc net.Conn) {
	defer s.releaseConn()
	c := &conn{
		srv:        s,
		nc:         nc,
		logger:     s.logger.With("remote", nc.RemoteAddr().String()),
		out:        make(chan []byte, maxInFlight),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
		sem:        make(chan struct{}, maxInFlight),
		mem:        newByteBudget(s.cfg.MaxConnMemory),
		release:    func() {},
	}
	c.ctx, c.cancel = context.WithCancel(ctx)
	defer c.cancel()
	s.track(nc, true)
	defer s.track(nc, false)
	// The hello is bounded by helloTimeout as a whole; frames after it get
	// frameBodyTimeout for their bodies.
	fr := wire.NewConnFrameReader(nc, 0)
	// Registered before the hello: a hello that took a tenant's connection
	// slot and then failed to write its answer must give the slot back.
	defer func() { c.release() }()
	if !c.hello(fr) {
		nc.Close()
		return
	}
	fr.SetBodyTimeout(frameBodyTimeout)
	fr.SetIdleTimeout(s.cfg.IdleTimeout)
	// The frame body is charged once its header has arrived, before it is
	// read: a spent budget leaves it in TCP.
	var frameCharge int64
	fr.SetAdmit(func(n int) error {
		var err error
		frameCharge, err = c.charge(int64(n), 0)
		return err
	})
	go c.writeLoop()
	defer func() {
		// Let the requests already started answer, then flush and close.
		c.wg.Wait()
		close(c.out)
		<-c.writerDone
		nc.Close()
	}()
	for {
		frameCharge = 0
		body, err := fr.Read(s.maxFrame)
		if err != nil {
			c.uncharge(frameCharge) // taken for a body that did not arrive
		}
		if errors.Is(err, wire.ErrIdle) {
			if c.inFlight.Load() > 0 || c.mem.inUse() > 0 {
				continue // waiting on its own requests: not idle
			}
			s.connLimits.closedIdle.Add(1)
			c.logger.Debug("closing idle connection", "idle_timeout", s.cfg.IdleTimeout)
			return
		}
		if err != nil {
			if errors.Is(err, wire.ErrFrameTooLarge) {
				c.logger.Warn("closing connection", "error", err)
				c.send(&wire.Response{Code: wire.CodeFrameTooLarge, Msg: err.Error()}, 0)
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, context.Canceled) {
				c.logger.Debug("connection read", "error", err)
			}
			return
		}
		// What decoding will allocate and what the answer may take,
		// charged at once before decoding (a reader that waited twice,
		// holding the first charge, could deadlock with others); a
		// request that would take more than the connection's whole budget
		// is refused undecoded (the frame boundary is intact).
		cost, id, op := wire.DecodeCost(body)
		if int64(cost)+int64(len(body)) > s.cfg.MaxConnMemory {
			c.uncharge(frameCharge)
			s.connLimits.refusedDecode.Add(1)
			c.send(&wire.Response{ID: id, Code: wire.CodeTxTooLarge, Msg: fmt.Sprintf(
				"request too large: decoding it would take %d bytes, more than a connection may hold (%d)", cost, s.cfg.MaxConnMemory)}, 0)
			continue
		}
		answer := answerReserve(op)
		charged, err := c.charge(int64(cost)+answer, frameCharge)
		if err != nil {
			c.uncharge(frameCharge)
			return
		}
		decodeCharge, answer := charged-min(answer, charged), min(answer, charged)
		req := new(wire.Request)
		err = wire.DecodeRequest(body, req)
		c.uncharge(frameCharge) // the frame buffer is reused from here on
		if err != nil {
			c.uncharge(decodeCharge)
			// The frame boundary is intact, so the connection can go on.
			c.send(&wire.Response{ID: req.ID, Code: wire.CodeBadRequest, Msg: "malformed request: " + err.Error()}, answer)
			continue
		}
		select {
		case c.sem <- struct{}{}:
		case <-c.done:
			c.uncharge(decodeCharge + answer)
			return
		}
		c.wg.Add(1)
		c.inFlight.Add(1)
		go func() {
			defer func() { <-c.sem; c.inFlight.Add(-1); c.wg.Done() }()
			start := time.Now()
			resp := c.srv.handle(c.ctx, c.p, req)
			c.srv.requests.observe(req.Op, resp.Code, time.Since(start))
			resp.ID = req.ID
			req = nil
			c.uncharge(decodeCharge)
			c.send(resp, answer)
		}()
	}
}

// hello reads and checks the first frame. It answers it either way and
// reports whether the connection may go on.
func (c *conn) hello(fr *wire.FrameReader) bool {
	_ = c.nc.SetReadDeadline(time.Now().Add(helloTimeout))
	body, err := fr.Read(wire.MaxHelloFrame)
	if err != nil {
		if errors.Is(err, wire.ErrFrameTooLarge) {
			c.writeDirect(&wire.Response{Code: wire.CodeFrameTooLarge, Msg: "hello too large"})
		}
		return false
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	var req wire.Request
	if err := wire.DecodeRequest(body, &req); err != nil {
		c.writeDirect(&wire.Response{Code: wire.CodeBadRequest, Msg: "malformed hello"})
		return false
	}
	if req.Op == wire.OpFormat { // format.go: answered to anyone, then closed
		c.writeDirect(c.srv.formatAnswer(req.ID))
		return false
	}
	if req.Op != wire.OpHello {
		c.writeDirect(&wire.Response{ID: req.ID, Code: wire.CodeBadRequest, Msg: "first request must be hello"})
		return false
	}
	if req.Version != wire.ProtocolVersion {
		c.writeDirect(&wire.Response{ID: req.ID, Code: wire.CodeVersionMismatch,
			Msg: "server speaks protocol version 1", Version: wire.ProtocolVersion})
		return false
	}
	// Before authentication nothing but helloRefusal's fixed answers
	// (hello.go): the same for every bad token on every node. A hello
	// marked Stale is one a follower forwarded: judged here, never passed on.
	// A node that has not been ready since it started (ready.go) judges
	// no token.
	ctx, cancel := context.WithTimeout(c.srv.ctx, helloTimeout)
	err = c.srv.waitServable(ctx)
	var p *principal
	if err == nil {
		p, err = c.srv.authenticate(ctx, req.Token, req.Stale)
	}
	cancel()
	if err != nil {
		c.writeDirect(c.helloRefusal(req.ID, err))
		return false
	}
	c.p = p
	release, refusal := c.srv.admitPrincipal(p)
	if refusal != nil {
		refusal.ID = req.ID
		c.writeDirect(refusal)
		return false
	}
	c.release = release
	resp := &wire.Response{ID: req.ID, Version: wire.ProtocolVersion, NodeID: c.srv.cfg.NodeID, Operator: p.operator,
		IdleTimeout: c.srv.cfg.IdleTimeout}
	if !p.operator {
		if t, err := c.srv.tenantOfToken(p); err == nil {
			resp.Tenant = &wire.TenantInfo{ID: uint64(t.ID), Name: t.Name, State: t.State.String()}
		}
	}
	return c.writeDirect(resp)
}

func (c *conn) writeDirect(resp *wire.Response) bool {
	buf, err := wire.AppendResponseFrame(nil, resp)
	if err != nil {
		return false
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	_, err = c.nc.Write(buf)
	return err == nil
}

// send queues a response, whose request reserved reserved bytes for it:
// the reservation becomes the encoded frame's size (taken without waiting
// when it is larger), released once the writer wrote it. It drops the
// response if the connection is closing.
func (c *conn) send(resp *wire.Response, reserved int64) {
	buf, err := wire.AppendResponseFrame(nil, resp)
	if err != nil {
		buf, _ = wire.AppendResponseFrame(nil, &wire.Response{ID: resp.ID, Code: wire.CodeInternal, Msg: "encode response"})
	}
	if n := int64(len(buf)); n > reserved {
		c.forceCharge(n - reserved)
	} else {
		c.uncharge(reserved - n)
	}
	select {
	case c.out <- buf:
	case <-c.done:
		c.uncharge(int64(len(buf)))
	}
}

func (c *conn) writeLoop() {
	defer close(c.writerDone)
	var batch []byte
	for frame := range c.out {
		batch = append(batch[:0], frame...)
		if len(c.out) == 0 {
			// The answers of one raft batch reach this queue one request
			// goroutine at a time, woken together: let those already
			// runnable queue theirs, so that one write carries them all
			// rather than one write each.
			runtime.Gosched()
		}
	drain:
		for len(batch) < 256<<10 {
			select {
			case f, ok := <-c.out:
				if !ok {
					break drain
				}
				batch = append(batch, f...)
			default:
				break drain
			}
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
		_, err := c.nc.Write(batch)
		c.uncharge(int64(len(batch)))
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.srv.connLimits.closedSlow.Add(1)
				c.logger.Info("closing a connection that does not read its answers", "write_timeout", c.srv.cfg.WriteTimeout)
			}
			c.fail()
			for f := range c.out {
				c.uncharge(int64(len(f)))
			}
			return
		}
		if cap(batch) > 4<<20 {
			batch = nil
		}
	}
}

// fail marks the connection broken: senders stop queueing, waits for
// memory end, and the reader is woken by the close.
func (c *conn) fail() {
	c.failOnce.Do(func() {
		close(c.done)
		c.cancel()
		c.nc.Close()
	})
}
