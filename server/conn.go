package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

const (
	// maxInFlight bounds the requests one connection may have outstanding;
	// the reader stops reading until one finishes, which pushes back on the
	// client through TCP.
	maxInFlight = 256
	// helloTimeout bounds how long a connection may take to authenticate.
	helloTimeout = 10 * time.Second
	// frameBodyTimeout bounds how long a frame's body may take to arrive
	// once its header has.
	frameBodyTimeout = 30 * time.Second
	// writeTimeout bounds one write to a client that stopped reading.
	writeTimeout = 30 * time.Second
)

// conn is one client connection. Its reader goroutine decodes frames and
// starts one goroutine per request (at most maxInFlight at once); its writer
// goroutine coalesces finished responses into as few writes as possible.
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
}

func (s *Server) serveConn(ctx context.Context, nc net.Conn) {
	c := &conn{
		srv:        s,
		nc:         nc,
		logger:     s.logger.With("remote", nc.RemoteAddr().String()),
		out:        make(chan []byte, maxInFlight),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
		sem:        make(chan struct{}, maxInFlight),
	}
	s.track(nc, true)
	defer s.track(nc, false)
	// The hello is bounded by helloTimeout as a whole; frames after it get
	// frameBodyTimeout for their bodies.
	fr := wire.NewConnFrameReader(nc, 0)
	if !c.hello(fr) {
		nc.Close()
		return
	}
	fr.SetBodyTimeout(frameBodyTimeout)
	go c.writeLoop()
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		// Let the requests already started answer, then flush and close.
		c.wg.Wait()
		close(c.out)
		<-c.writerDone
		cancel()
		nc.Close()
	}()
	for {
		body, err := fr.Read(s.maxFrame)
		if err != nil {
			if errors.Is(err, wire.ErrFrameTooLarge) {
				c.logger.Warn("closing connection", "error", err)
				c.send(&wire.Response{Code: wire.CodeFrameTooLarge, Msg: err.Error()})
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.logger.Debug("connection read", "error", err)
			}
			return
		}
		req := new(wire.Request)
		if err := wire.DecodeRequest(body, req); err != nil {
			// The frame boundary is intact, so the connection can go on.
			c.send(&wire.Response{ID: req.ID, Code: wire.CodeBadRequest, Msg: "malformed request: " + err.Error()})
			continue
		}
		select {
		case c.sem <- struct{}{}:
		case <-c.done:
			return
		}
		c.wg.Add(1)
		go func() {
			defer func() { <-c.sem; c.wg.Done() }()
			resp := c.srv.handle(ctx, c.p, req)
			resp.ID = req.ID
			c.send(resp)
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
	ctx, cancel := context.WithTimeout(c.srv.ctx, helloTimeout)
	err = c.srv.caughtUp(ctx)
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
	resp := &wire.Response{ID: req.ID, Version: wire.ProtocolVersion, NodeID: c.srv.cfg.NodeID, Operator: p.operator}
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
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err = c.nc.Write(buf)
	return err == nil
}

// send queues a response; it drops it if the connection is closing.
func (c *conn) send(resp *wire.Response) {
	buf, err := wire.AppendResponseFrame(nil, resp)
	if err != nil {
		buf, _ = wire.AppendResponseFrame(nil, &wire.Response{ID: resp.ID, Code: wire.CodeInternal, Msg: "encode response"})
	}
	select {
	case c.out <- buf:
	case <-c.done:
	}
}

func (c *conn) writeLoop() {
	defer close(c.writerDone)
	var batch []byte
	for frame := range c.out {
		batch = append(batch[:0], frame...)
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
		_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := c.nc.Write(batch); err != nil {
			c.fail()
			for range c.out {
			}
			return
		}
		if cap(batch) > 4<<20 {
			batch = nil
		}
	}
}

// fail marks the connection broken: senders stop queueing and the reader
// is woken by the close.
func (c *conn) fail() {
	c.failOnce.Do(func() {
		close(c.done)
		c.nc.Close()
	})
}
