package raft

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/internal/testpki"
)

// peerCA is a certificate authority made at test time.
type peerCA struct{ *testpki.CA }

func newPeerCA(t *testing.T) *peerCA {
	t.Helper()
	ca, err := testpki.NewCA("test CA")
	require.NoError(t, err)
	return &peerCA{ca}
}

// peer returns the PeerTLS of a node with a certificate of ca for ips.
func (ca *peerCA) peer(t *testing.T, ips ...net.IP) *PeerTLS {
	t.Helper()
	cert, err := ca.Issue("node", testpki.Leaf{IPs: ips})
	require.NoError(t, err)
	return &PeerTLS{Certificate: cert, CAs: ca.Pool()}
}

var loopback = net.IPv4(127, 0, 0, 1)

// syncBuffer is a bytes.Buffer for a logger and a test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTestStreamLayer(t *testing.T, p *PeerTLS, logs io.Writer) *tlsStreamLayer {
	t.Helper()
	s, err := newTLSStreamLayer("127.0.0.1:0", nil, p, slog.New(slog.NewTextHandler(logs, nil)))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// acceptOne returns the next accepted connection, or fails after d.
func acceptOne(t *testing.T, s *tlsStreamLayer, d time.Duration) net.Conn {
	t.Helper()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := s.Accept()
		if err == nil {
			ch <- c
		}
	}()
	select {
	case c := <-ch:
		return c
	case <-time.After(d):
		t.Fatalf("no connection accepted within %v", d)
		return nil
	}
}

// A peer of the cluster CA gets through, both ways; plain TCP, no
// certificate, a certificate of another CA are refused at the handshake
// and logged with the remote address.
func TestPeerTLSAcceptsOnlyTheClusterCA(t *testing.T) {
	ca, other := newPeerCA(t), newPeerCA(t)
	logs := &syncBuffer{}
	s := newTestStreamLayer(t, ca.peer(t, loopback), logs)
	addr := s.Addr().String()
	client := newTestStreamLayer(t, ca.peer(t, loopback), io.Discard)

	c, err := client.Dial(hraft.ServerAddress("127.0.0.1:"+portOf(addr)), 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	got := acceptOne(t, s, 10*time.Second)
	defer got.Close()
	_, err = c.Write([]byte("x"))
	require.NoError(t, err)
	b := make([]byte, 1)
	_, err = io.ReadFull(got, b)
	require.NoError(t, err)

	refused := []struct {
		name string
		dial func() (net.Conn, error)
	}{
		{"plain", func() (net.Conn, error) { return net.Dial("tcp", addr) }},
		{"no certificate", func() (net.Conn, error) {
			return tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
		}},
		{"another CA", func() (net.Conn, error) {
			p := other.peer(t, loopback)
			cfg := p.clientConfig()
			cfg.InsecureSkipVerify = true
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &p.Certificate, nil }
			return tls.Dial("tcp", addr, cfg)
		}},
	}
	for i, r := range refused {
		c, err := r.dial()
		if err == nil {
			_, _ = c.Write([]byte("\x00 forged raft RPC, not TLS"))
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = c.Read(make([]byte, 1))
			var ne net.Error
			require.False(t, errors.As(err, &ne) && ne.Timeout(), "%s: neither answered nor closed", r.name)
			require.Error(t, err, r.name)
			local := c.LocalAddr().String()
			c.Close()
			require.Eventually(t, func() bool { return strings.Contains(logs.String(), "remote="+local) }, 10*time.Second, 10*time.Millisecond,
				"%s: refusal of %s not logged:\n%s", r.name, local, logs.String())
		}
		require.Eventually(t, func() bool { return s.refusals.total.Load() == uint64(i+1) }, 10*time.Second, 10*time.Millisecond, r.name)
	}
	require.Contains(t, logs.String(), "level=WARN")

	// The dialler verifies the server too: a server of another CA, or one
	// whose certificate does not name the address dialled, is refused.
	rogue := newTestStreamLayer(t, other.peer(t, loopback), io.Discard)
	_, err = client.Dial(hraft.ServerAddress("127.0.0.1:"+portOf(rogue.Addr().String())), 5*time.Second)
	require.Error(t, err)
	misnamed := newTestStreamLayer(t, ca.peer(t, net.IPv4(10, 9, 8, 7)), io.Discard)
	_, err = client.Dial(hraft.ServerAddress("127.0.0.1:"+portOf(misnamed.Addr().String())), 5*time.Second)
	require.Error(t, err)
	require.Contains(t, err.Error(), "127.0.0.1")
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// dialFrom dials addr from the loopback address 127.0.0.<host>, so that a
// test can play hosts other than the cluster's peers (Linux routes all of
// 127.0.0.0/8 to the loopback interface).
func dialFrom(t *testing.T, host byte, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, host)}}
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	return c
}

// Connections that never complete their handshake do not keep a peer from
// being accepted: beyond maxPeerHandshakes in all, or
// maxPeerHandshakesPerIP from one address, they are closed at once.
func TestPeerTLSSlowHandshakesDoNotBlockAccept(t *testing.T) {
	ca := newPeerCA(t)
	s := newTestStreamLayer(t, ca.peer(t, loopback), io.Discard)
	addr := s.Addr().String()
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	closedAtOnce := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(peerHandshakeTimeout / 2))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
	// Idle connections from many hosts fill every slot.
	for i := range maxPeerHandshakes {
		// sends nothing: a handshake that never ends
		idle = append(idle, dialFrom(t, byte(2+i/maxPeerHandshakesPerIP), addr))
	}
	require.Eventually(t, func() bool { return len(s.slots) == maxPeerHandshakes }, 10*time.Second, 5*time.Millisecond)
	// One more is closed at once, and counted.
	extra := dialFrom(t, 100, addr)
	defer extra.Close()
	require.True(t, closedAtOnce(extra), "the connection over the bound was not closed at once")
	require.Equal(t, uint64(1), s.refusals.total.Load())

	// The idle ones time out. Then one host opens many idle connections
	// at once: only maxPeerHandshakesPerIP of them take a slot, the rest
	// are closed at once, and a real peer gets in at once.
	require.Eventually(t, func() bool { return s.refusals.total.Load() >= 1+maxPeerHandshakes }, 3*peerHandshakeTimeout, 10*time.Millisecond)
	before := s.refusals.total.Load()
	for range maxPeerHandshakes {
		idle = append(idle, dialFrom(t, 2, addr))
	}
	require.Eventually(t, func() bool {
		return s.refusals.total.Load() == before+maxPeerHandshakes-maxPeerHandshakesPerIP
	}, 10*time.Second, 5*time.Millisecond, "one host's connections beyond its share were not refused")
	require.LessOrEqual(t, len(s.slots), maxPeerHandshakesPerIP)
	client := newTestStreamLayer(t, ca.peer(t, loopback), io.Discard)
	start := time.Now()
	c, err := client.Dial(hraft.ServerAddress(addr), 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	acceptOne(t, s, 5*time.Second).Close()
	require.Less(t, time.Since(start), peerHandshakeTimeout, "a peer waited behind idle handshakes")
}

// A flood of refused connections is counted in full but logged at a
// bounded rate.
func TestPeerTLSRefusalLogIsRateLimited(t *testing.T) {
	logs := &syncBuffer{}
	r := newRefusalLog(slog.New(slog.NewTextHandler(logs, nil)))
	start := time.Now()
	addr := &net.TCPAddr{IP: loopback, Port: 1}
	for range 1000 {
		r.refuse(addr, "tls: first record does not look like a TLS handshake")
	}
	elapsed := time.Since(start)
	lines := strings.Count(logs.String(), "refused a peer connection")
	require.Equal(t, uint64(1000), r.total.Load())
	require.LessOrEqual(t, lines, refusalLogBurst+int(elapsed/refusalLogEvery)+1)
	require.GreaterOrEqual(t, lines, 1)
	// The next line that gets through says how many were left out.
	r.limit.SetBurst(1)
	r.limit.SetLimit(1e9)
	r.refuse(addr, "again")
	require.Contains(t, logs.String(), "suppressed_since_last=")
}
