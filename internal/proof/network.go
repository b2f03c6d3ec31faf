package proof

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// identifyBytes is how much of a new connection Network reads to find out
// which node opened it: the sender's address is the first field of the first
// request, within its first fifty bytes.
const identifyBytes = 512

// identifyTimeout bounds the wait for those bytes.
const identifyTimeout = 5 * time.Second

// tlsHandshakeRecord is the first byte of a TLS connection (the record type
// of its ClientHello). A plain raft connection starts with an RPC type, a
// small number, so the two cannot be confused.
const tlsHandshakeRecord = 0x16

// dialTimeout bounds a proxy's dial of the node behind it.
const dialTimeout = 2 * time.Second

// Network is a set of TCP proxies, one in front of each node's raft address,
// that can cut or delay the traffic between any two nodes: it injects the
// network faults of the linearizability tests. Each node advertises its
// proxy's address as its raft address, so every raft connection to it
// passes through the proxy.
//
// A raft connection is opened by the node sending requests on it (responses
// come back on the same connection), so the proxy in front of node B sees
// every connection from A to B. It learns that A opened it from the first
// request: hashicorp/raft's net transport writes one byte of RPC type and
// the request as a msgpack map whose keys are in name order, so the first is
// the RPC header's Addr, the sender's advertised address, which is A's
// proxy. A connection whose sender is not recognised is forwarded untouched
// and counted in Unidentified; tests check that none was. A TLS connection
// (peer TLS) is forwarded at once, unidentified: the sender cannot be read
// from an encrypted stream, so cuts and delays by link do not apply to it.
//
// A Network is safe for concurrent use.
type Network struct {
	mu      sync.Mutex
	ids     []string
	cut     map[link]bool
	delay   map[link]time.Duration
	proxies []*Proxy
	closed  bool

	// Identified counts connections whose sender was recognised.
	Identified atomic.Int64
	// Unidentified counts connections forwarded without knowing the sender.
	Unidentified atomic.Int64
	// Refused counts connections refused or closed because their link was cut.
	Refused atomic.Int64
}

// link is the direction from one node to another: requests sent by from to
// to, and their responses.
type link struct{ from, to string }

// NewNetwork returns a Network without proxies and without faults.
func NewNetwork() *Network {
	return &Network{cut: map[link]bool{}, delay: map[link]time.Duration{}}
}

// Proxy forwards connections to one node's raft address.
type Proxy struct {
	net *Network
	id  string // node behind the proxy
	ln  net.Listener

	mu     sync.Mutex
	target string
	pipes  map[*pipe]struct{}
	wg     sync.WaitGroup
}

// pipe is one proxied connection.
type pipe struct {
	l    link // guarded by the proxy's mu until the pipe forwards
	a    net.Conn
	done chan struct{}

	mu     sync.Mutex
	b      net.Conn // the connection to the node, once dialled
	closed bool
}

func (p *pipe) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	close(p.done)
	p.a.Close()
	if p.b != nil {
		p.b.Close()
	}
}

// setB records the connection to the node; it reports false, and closes b,
// if the pipe was closed meanwhile.
func (p *pipe) setB(b net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		b.Close()
		return false
	}
	p.b = b
	return true
}

// Listen starts a proxy for node id on a free port of 127.0.0.1. It
// forwards nothing until SetTarget names the node's real raft address.
func (n *Network) Listen(id string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proof: proxy for %s: %w", id, err)
	}
	p := &Proxy{net: n, id: id, ln: ln, pipes: map[*pipe]struct{}{}}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		ln.Close()
		return nil, errors.New("proof: network closed")
	}
	n.ids = append(n.ids, id)
	n.proxies = append(n.proxies, p)
	n.mu.Unlock()
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the proxy's address, the one the node must advertise.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetTarget sets the real raft address of the node behind the proxy.
func (p *Proxy) SetTarget(addr string) {
	p.mu.Lock()
	p.target = addr
	p.mu.Unlock()
}

// Cut drops every request from node from to node to, and the connections
// carrying them, until Heal or Connect.
func (n *Network) Cut(from, to string) {
	n.mu.Lock()
	n.cut[link{from, to}] = true
	proxies := append([]*Proxy(nil), n.proxies...)
	n.mu.Unlock()
	for _, p := range proxies {
		p.closeLink(link{from, to})
	}
}

// Connect undoes Cut for one direction.
func (n *Network) Connect(from, to string) {
	n.mu.Lock()
	delete(n.cut, link{from, to})
	n.mu.Unlock()
}

// Partition cuts every link between nodes of different groups, in both
// directions. Links within a group are left as they are.
func (n *Network) Partition(groups ...[]string) {
	for i, g := range groups {
		for j, h := range groups {
			if i == j {
				continue
			}
			for _, a := range g {
				for _, b := range h {
					n.Cut(a, b)
				}
			}
		}
	}
}

// Isolate cuts node id off from every other node, both ways.
func (n *Network) Isolate(id string) {
	n.mu.Lock()
	others := make([]string, 0, len(n.ids))
	for _, o := range n.ids {
		if o != id {
			others = append(others, o)
		}
	}
	n.mu.Unlock()
	n.Partition([]string{id}, others)
}

// SetDelay delays every chunk of bytes sent from node from to node to by d
// (zero removes the delay). Responses travel the reverse link.
func (n *Network) SetDelay(from, to string, d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if d <= 0 {
		delete(n.delay, link{from, to})
		return
	}
	n.delay[link{from, to}] = d
}

// Heal removes every cut and delay.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut = map[link]bool{}
	n.delay = map[link]time.Duration{}
}

// Close stops every proxy and closes every proxied connection. It waits for
// the proxies' goroutines.
func (n *Network) Close() {
	n.mu.Lock()
	n.closed = true
	proxies := n.proxies
	n.proxies = nil
	n.mu.Unlock()
	for _, p := range proxies {
		p.close()
	}
}

func (n *Network) isCut(l link) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cut[l]
}

func (n *Network) delayOf(l link) time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.delay[l]
}

// addrKey is the msgpack encoding of the key "Addr": hashicorp/raft's
// msgpack codec writes a request's fields in name order, so the RPC header's
// Addr field (the sender's advertised raft address, which is its proxy's)
// comes first in every request.
var addrKey = []byte("\xa4Addr")

// identify returns the ID of the node whose proxy address is the first
// request's Addr field in b ("" if no node has it), and whether b holds the
// whole field yet.
func (n *Network) identify(b []byte) (id string, complete bool) {
	i := bytes.Index(b, addrKey)
	if i < 0 {
		return "", false
	}
	s, ok := msgpackString(b[i+len(addrKey):])
	if !ok {
		return "", false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.proxies {
		if p.Addr() == s {
			return p.id, true
		}
	}
	return "", true
}

// msgpackString decodes the msgpack string or byte array at the start of b.
func msgpackString(b []byte) (string, bool) {
	if len(b) == 0 {
		return "", false
	}
	var n, off int
	switch c := b[0]; {
	case c >= 0xa0 && c <= 0xbf: // fixstr
		n, off = int(c&0x1f), 1
	case (c == 0xd9 || c == 0xc4) && len(b) > 1: // str8, bin8
		n, off = int(b[1]), 2
	default:
		return "", false
	}
	if len(b) < off+n {
		return "", false
	}
	return string(b[off : off+n]), true
}

func (p *Proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	pipes := p.pipes
	p.pipes = map[*pipe]struct{}{}
	p.mu.Unlock()
	for pp := range pipes {
		pp.close()
	}
	p.wg.Wait()
}

func (p *Proxy) closeLink(l link) {
	p.mu.Lock()
	var victims []*pipe
	for pp := range p.pipes {
		if pp.l == l {
			victims = append(victims, pp)
		}
	}
	p.mu.Unlock()
	for _, pp := range victims {
		pp.close()
	}
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

// serve identifies the sender of c, then forwards it to the target in both
// directions unless its link is cut.
func (p *Proxy) serve(c net.Conn) {
	pp := &pipe{a: c, done: make(chan struct{})}
	p.mu.Lock()
	if p.pipes == nil {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.pipes[pp] = struct{}{}
	target := p.target
	p.mu.Unlock()
	defer func() {
		pp.close()
		p.mu.Lock()
		delete(p.pipes, pp)
		p.mu.Unlock()
	}()

	head := make([]byte, 0, identifyBytes)
	from, complete := "", false
	_ = c.SetReadDeadline(time.Now().Add(identifyTimeout))
	for !complete && len(head) < identifyBytes {
		n, err := c.Read(head[len(head):identifyBytes])
		head = head[:len(head)+n]
		if len(head) > 0 && head[0] == tlsHandshakeRecord {
			// Peer TLS: the sender cannot be read from the encrypted
			// stream (and waiting for more of it would stall the
			// handshake), so the connection is forwarded unidentified.
			break
		}
		from, complete = p.net.identify(head)
		if err != nil {
			if len(head) == 0 {
				return
			}
			break
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	if from == "" {
		p.net.Unidentified.Add(1)
	} else {
		p.net.Identified.Add(1)
	}
	p.mu.Lock() // closeLink reads l under p.mu
	pp.l = link{from: from, to: p.id}
	p.mu.Unlock()
	if p.net.isCut(pp.l) || target == "" {
		p.net.Refused.Add(1)
		return
	}
	b, err := net.DialTimeout("tcp", target, dialTimeout)
	if err != nil {
		return
	}
	if !pp.setB(b) { // cut or closed while dialling
		return
	}
	if p.net.isCut(pp.l) {
		p.net.Refused.Add(1)
		return
	}
	if _, err := b.Write(head); err != nil {
		return
	}
	back := link{from: pp.l.to, to: pp.l.from}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		p.copy(pp, b, c, pp.l)
	}()
	go func() {
		defer wg.Done()
		p.copy(pp, c, b, back)
	}()
	wg.Wait()
}

// copy forwards src to dst, chunk by chunk, applying l's faults, until
// either side fails or the pipe is closed.
func (p *Proxy) copy(pp *pipe, dst io.Writer, src io.Reader, l link) {
	defer pp.close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.net.isCut(l) || p.net.isCut(pp.l) {
				p.net.Refused.Add(1)
				return
			}
			if d := p.net.delayOf(l); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-pp.done:
					t.Stop()
					return
				}
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
