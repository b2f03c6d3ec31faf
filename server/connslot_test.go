package server_test

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/server"
)

// TestHelloThatCannotAnswerGivesItsSlotBack: a client sends a valid hello
// of a tenant token and resets the connection at once, so that the node's
// answer fails to write. With one connection allowed per tenant, every such
// hello took the tenant's slot for good before the fix, and the tenant's
// own client was then refused with "too many connections". A write can
// also win the race against the reset, which releases the slot the normal
// way; so the test tries many times and must always get in afterwards.
func TestHelloThatCannotAnswerGivesItsSlotBack(t *testing.T) {
	s, op := startNodeWith(t, func(c *server.Config) { c.MaxConnectionsPerTenant = 1 })
	admin := login(t, s.Addr(), op)
	require.Equal(t, wire.CodeOK, admin.call(&wire.Request{Op: wire.OpCreateTenant, Name: "acme"}).Code)
	tok := admin.call(&wire.Request{Op: wire.OpNewToken, Name: "acme"})
	require.Equal(t, wire.CodeOK, tok.Code, tok.Msg)
	hello, err := wire.AppendRequestFrame(nil, &wire.Request{Op: wire.OpHello, Version: wire.ProtocolVersion, Token: tok.Token})
	require.NoError(t, err)
	for range 50 {
		nc, err := net.Dial("tcp", s.Addr())
		require.NoError(t, err)
		_, err = nc.Write(hello)
		require.NoError(t, err)
		_ = nc.(*net.TCPConn).SetLinger(0) // close with a reset
		nc.Close()
	}
	// The node frees a slot when it notices the reset: poll.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := dialRaw(t, s.Addr())
		resp := c.call(&wire.Request{Op: wire.OpHello, Version: wire.ProtocolVersion, Token: tok.Token})
		if resp.Code == wire.CodeOK {
			return
		}
		require.Equal(t, wire.CodeTooManyConnections, resp.Code, resp.Msg)
		if time.Now().After(deadline) {
			t.Fatalf("the tenant's one connection slot is still taken 10 s after the resets: %s", resp.Msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
