package proof

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// rawConn speaks the wire protocol by hand, one request at a time, so that
// tests can send what the client library never would.
type rawConn struct {
	nc      net.Conn
	fr      *wire.FrameReader
	id      uint64
	timeout time.Duration
}

// dialRaw connects to addr without saying hello. Each later exchange is
// bounded by 20 seconds, or by what is left of ctx's deadline.
func dialRaw(ctx context.Context, addr string) (*rawConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	timeout := 20 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	return &rawConn{nc: nc, fr: wire.NewFrameReader(nc), timeout: timeout}, nil
}

// loginRaw connects to addr and authenticates with token.
func loginRaw(ctx context.Context, addr, token string) (*rawConn, *wire.Response, error) {
	c, err := dialRaw(ctx, addr)
	if err != nil {
		return nil, nil, err
	}
	resp, _, err := c.call(&wire.Request{Op: wire.OpHello, Version: wire.ProtocolVersion, Token: token})
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	if resp.Code != wire.CodeOK {
		c.Close()
		return nil, resp, fmt.Errorf("hello: %s: %s", resp.Code, resp.Msg)
	}
	return c, resp, nil
}

func (c *rawConn) Close() error { return c.nc.Close() }

// call sends req with the next request ID and returns the answer and its
// encoded body (with the ID as sent by the server).
func (c *rawConn) call(req *wire.Request) (*wire.Response, []byte, error) {
	c.id++
	req.ID = c.id
	buf, err := wire.AppendRequestFrame(nil, req)
	if err != nil {
		return nil, nil, err
	}
	return c.send(buf)
}

// send writes raw bytes and reads one answer.
func (c *rawConn) send(b []byte) (*wire.Response, []byte, error) {
	_ = c.nc.SetDeadline(time.Now().Add(c.timeout))
	if _, err := c.nc.Write(b); err != nil {
		return nil, nil, err
	}
	return c.read()
}

// read reads one answer.
func (c *rawConn) read() (*wire.Response, []byte, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(c.timeout))
	body, err := c.fr.Read(wire.DefaultMaxFrame)
	if err != nil {
		return nil, nil, err
	}
	raw := append([]byte(nil), body...)
	var resp wire.Response
	if err := wire.DecodeResponse(raw, &resp); err != nil {
		return nil, raw, err
	}
	return &resp, raw, nil
}
