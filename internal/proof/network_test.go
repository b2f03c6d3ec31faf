package proof

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// fakeRequest is the start of a hashicorp/raft request as the net
// transport writes it: the RPC type, then a msgpack map whose first key is
// the sender's advertised address.
func fakeRequest(from string) []byte {
	b := []byte{0x00, 0x89, 0xa4, 'A', 'd', 'd', 'r', 0xa0 | byte(len(from))}
	return append(append(b, from...), "\xa7Entries\x90"...)
}

// TestNetworkCutsAndIdentifies checks the proxy on its own: it tells which
// node opened a connection, forwards both ways, and stops forwarding a
// direction that is cut, also on a connection already open.
func TestNetworkCutsAndIdentifies(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	n := NewNetwork()
	defer n.Close()
	pa, err := n.Listen("node-a")
	if err != nil {
		t.Fatal(err)
	}
	pb, err := n.Listen("node-b")
	if err != nil {
		t.Fatal(err)
	}
	pb.SetTarget(echo.Addr().String())

	// a → b: identified as a, echoed back.
	c, err := net.Dial("tcp", pb.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := fakeRequest(pa.Addr())
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(req))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, req) {
		t.Fatalf("echo through the proxy: %q, %v", got, err)
	}
	if n.Identified.Load() != 1 || n.Unidentified.Load() != 0 {
		t.Fatalf("identified %d, unidentified %d; want 1, 0", n.Identified.Load(), n.Unidentified.Load())
	}

	// Cutting b → a (the responses) kills the open connection.
	n.Cut("node-b", "node-a")
	_, _ = c.Write([]byte("more"))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if m, err := c.Read(got); err == nil {
		t.Fatalf("read %q through a cut link", got[:m])
	}

	// Cutting a → b refuses new connections from a; others pass.
	n.Heal()
	n.Cut("node-a", "node-b")
	c2, err := net.Dial("tcp", pb.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_, _ = c2.Write(req)
	_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if m, err := c2.Read(got); err == nil {
		t.Fatalf("read %q through a cut link", got[:m])
	}
	c3, err := net.Dial("tcp", pb.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	other := fakeRequest("127.0.0.1:1") // a sender the network does not know
	_, _ = c3.Write(other)
	_ = c3.SetReadDeadline(time.Now().Add(5 * time.Second))
	got = make([]byte, len(other))
	if _, err := io.ReadFull(c3, got); err != nil {
		t.Fatalf("an unknown sender is forwarded (and counted): %v", err)
	}
	if n.Unidentified.Load() != 1 {
		t.Fatalf("unidentified %d, want 1", n.Unidentified.Load())
	}
}
