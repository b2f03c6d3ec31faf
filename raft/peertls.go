package raft

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	"golang.org/x/time/rate"
)

// PeerTLS is the mutual TLS of the raft port. With it, every raft
// connection (log replication, votes, snapshot transfers) is TLS in both
// directions: a node accepts a connection only from a peer presenting a
// certificate signed by CAs, and dials only peers whose certificate is
// signed by CAs and names the address dialled (an IP SAN for an IP address,
// a DNS SAN for a host name).
type PeerTLS struct {
	// Certificate is this node's certificate and key. It is presented both
	// to nodes that dial in (server authentication) and to nodes this one
	// dials (client authentication), so it must allow both extended key
	// usages, serverAuth and clientAuth.
	Certificate tls.Certificate
	// CAs is the cluster CA: the only issuer whose certificates are
	// accepted from peers.
	CAs *x509.CertPool
}

func (p *PeerTLS) validate() error {
	if len(p.Certificate.Certificate) == 0 {
		return errors.New("raft: config: PeerTLS without a certificate")
	}
	if p.CAs == nil {
		return errors.New("raft: config: PeerTLS without a CA")
	}
	return nil
}

// serverConfig is the TLS configuration of accepted raft connections.
func (p *PeerTLS) serverConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.Certificate},
		ClientCAs:    p.CAs,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
}

// clientConfig is the TLS configuration of dialled raft connections; the
// server name is filled in from the address dialled.
func (p *PeerTLS) clientConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.Certificate},
		RootCAs:      p.CAs,
		MinVersion:   tls.VersionTLS12,
	}
}

// Bounds of the TLS stream layer.
const (
	// peerHandshakeTimeout bounds one TLS handshake of an accepted
	// connection: a peer that handshakes slower is refused.
	peerHandshakeTimeout = 5 * time.Second
	// maxPeerHandshakes bounds the handshakes in progress at once. A
	// connection arriving while that many are running is closed at once,
	// so a flood of slow handshakers costs at most this many goroutines
	// and sockets for at most peerHandshakeTimeout each.
	maxPeerHandshakes = 64
	// maxPeerHandshakesPerIP bounds the handshakes in progress from one
	// source address, so that one host holding slots open without ever
	// handshaking cannot take them all: the cluster's peers, on other
	// hosts, still get in.
	maxPeerHandshakesPerIP = 8
	// refusalLogEvery and refusalLogBurst rate-limit the warnings about
	// refused peers, so that a flood cannot fill the log: refusals beyond
	// the rate are counted and the count is reported with the next warning.
	refusalLogEvery = time.Second
	refusalLogBurst = 5
)

// tlsStreamLayer is hashicorp/raft's StreamLayer over mutual TLS. Accepted
// connections are handshaken, each in its own goroutine and with a
// deadline, before Accept returns them, so one slow or hostile client never
// delays the others and NetworkTransport only ever reads from verified
// peers. It is safe for concurrent use.
type tlsStreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	server    *tls.Config
	client    *tls.Config
	refusals  *refusalLog

	ready     chan net.Conn // handshaken connections waiting for Accept
	slots     chan struct{} // one per handshake in progress
	perIPMu   sync.Mutex
	perIP     map[string]int // handshakes in progress by source IP
	closing   chan struct{}
	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	closeOnce sync.Once
	wg        sync.WaitGroup
}

var _ hraft.StreamLayer = (*tlsStreamLayer)(nil)

// newTLSTransport listens on bind and returns a NetworkTransport over
// mutual TLS, advertising advertise (or the bound address when nil).
func newTLSTransport(bind string, advertise net.Addr, p *PeerTLS, slogger *slog.Logger, logger hclog.Logger) (*hraft.NetworkTransport, *tlsStreamLayer, error) {
	s, err := newTLSStreamLayer(bind, advertise, p, slogger)
	if err != nil {
		return nil, nil, err
	}
	return hraft.NewNetworkTransportWithLogger(s, tcpMaxPool, tcpTimeout, logger), s, nil
}

// newTLSStreamLayer listens on bind and starts accepting.
func newTLSStreamLayer(bind string, advertise net.Addr, p *PeerTLS, slogger *slog.Logger) (*tlsStreamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("raft: listen on %s: %w", bind, err)
	}
	s := &tlsStreamLayer{
		ln:        ln,
		advertise: advertise,
		server:    p.serverConfig(),
		client:    p.clientConfig(),
		refusals:  newRefusalLog(slogger),
		ready:     make(chan net.Conn),
		slots:     make(chan struct{}, maxPeerHandshakes),
		perIP:     make(map[string]int),
		closing:   make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	// As hashicorp/raft's TCP transport: peers must be told an address
	// they can dial.
	if a, ok := s.Addr().(*net.TCPAddr); !ok || a.IP == nil || a.IP.IsUnspecified() {
		s.cancel()
		ln.Close()
		return nil, fmt.Errorf("raft: listen on %s: the address %s cannot be advertised to peers; set an advertise address", bind, s.Addr())
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// acceptLoop accepts TCP connections and starts a handshake for each, or
// closes it when maxPeerHandshakes are in progress.
func (s *tlsStreamLayer) acceptLoop() {
	defer s.wg.Done()
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.closing:
				return
			default:
			}
			// A transient failure (out of file descriptors): back off as
			// net/http does, and keep accepting.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t := time.NewTimer(delay)
			select {
			case <-s.closing:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		delay = 0
		ip := sourceIP(c.RemoteAddr())
		if !s.takeIP(ip) {
			s.refusals.refuse(c.RemoteAddr(), "too many TLS handshakes in progress from this address")
			c.Close()
			continue
		}
		select {
		case s.slots <- struct{}{}:
			s.wg.Add(1)
			go s.handshake(c, ip)
		default:
			s.releaseIP(ip)
			s.refusals.refuse(c.RemoteAddr(), "too many TLS handshakes in progress")
			c.Close()
		}
	}
}

// sourceIP is the host part of a connection's remote address.
func sourceIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// takeIP counts one more handshake from ip, unless it has
// maxPeerHandshakesPerIP in progress already.
func (s *tlsStreamLayer) takeIP(ip string) bool {
	s.perIPMu.Lock()
	defer s.perIPMu.Unlock()
	if s.perIP[ip] >= maxPeerHandshakesPerIP {
		return false
	}
	s.perIP[ip]++
	return true
}

func (s *tlsStreamLayer) releaseIP(ip string) {
	s.perIPMu.Lock()
	defer s.perIPMu.Unlock()
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

// handshake verifies the peer of c and hands the connection to Accept.
func (s *tlsStreamLayer) handshake(c net.Conn, ip string) {
	defer s.wg.Done()
	defer func() { <-s.slots; s.releaseIP(ip) }()
	tc := tls.Server(c, s.server)
	// Closing the layer (s.ctx) ends handshakes in progress too.
	ctx, cancel := context.WithTimeout(s.ctx, peerHandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		if s.ctx.Err() == nil { // not merely cut short by Close
			s.refusals.refuse(c.RemoteAddr(), err.Error())
		}
		c.Close()
		return
	}
	select {
	case s.ready <- tc:
	case <-s.closing:
		tc.Close()
	}
}

// Accept returns the next connection whose peer presented a certificate of
// the cluster CA. It returns net.ErrClosed once the layer is closed.
func (s *tlsStreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.ready:
		return c, nil
	case <-s.closing:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and waits for the handshakes in progress to end.
// Connections already accepted are the transport's to close.
func (s *tlsStreamLayer) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closing)
		s.cancel()
		err = s.ln.Close()
		s.wg.Wait()
	})
	return err
}

// Addr returns the advertised address, or the bound one.
func (s *tlsStreamLayer) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.ln.Addr()
}

// Dial connects to the peer at address over TLS, presenting this node's
// certificate and verifying the peer's against the cluster CA and the
// address's host. The timeout bounds the handshake too.
func (s *tlsStreamLayer) Dial(address hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.dialContext(context.Background(), string(address), timeout)
}

func (s *tlsStreamLayer) dialContext(ctx context.Context, address string, timeout time.Duration) (net.Conn, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: s.client}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return d.DialContext(ctx, "tcp", address)
}

// refusalLog logs refused peer connections at warn level, at most
// refusalLogBurst at once and one per refusalLogEvery after that; it counts
// every refusal. It is safe for concurrent use.
type refusalLog struct {
	logger     *slog.Logger
	limit      *rate.Limiter
	total      atomic.Uint64
	suppressed atomic.Uint64
}

func newRefusalLog(logger *slog.Logger) *refusalLog {
	return &refusalLog{logger: logger, limit: rate.NewLimiter(rate.Every(refusalLogEvery), refusalLogBurst)}
}

// refuse records that the connection from remote was refused, and why.
func (r *refusalLog) refuse(remote net.Addr, reason string) {
	r.total.Add(1)
	if !r.limit.Allow() {
		r.suppressed.Add(1)
		return
	}
	r.logger.Warn("raft: refused a peer connection: it did not complete mutual TLS with a certificate of the cluster CA",
		"remote", remote.String(), "reason", reason, "suppressed_since_last", r.suppressed.Swap(0))
}

// CheckPeer dials the raft address addr over the peer TLS and reports
// whether the node there presents a certificate of the cluster CA for that
// address. The leader calls it before adding a joining node, so that only a
// node holding a cluster certificate can become a member. Without peer TLS
// it returns nil at once. A failure wraps ErrPeerNotVerified.
func (n *Node) CheckPeer(ctx context.Context, addr string) error {
	if n.peerStream == nil {
		return nil
	}
	c, err := n.peerStream.dialContext(ctx, addr, tcpTimeout)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrPeerNotVerified, addr, err)
	}
	return c.Close()
}

// PeersRefused returns how many raft connections this node refused because
// the peer did not complete a TLS handshake with a certificate of the
// cluster CA; 0 without peer TLS.
func (n *Node) PeersRefused() uint64 {
	if n.peerStream == nil {
		return 0
	}
	return n.peerStream.refusals.total.Load()
}
