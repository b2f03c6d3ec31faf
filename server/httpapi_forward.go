package server

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// forwardToLeader sends a request that this node cannot serve (a write or
// a linearizable read on a follower) to the leader's HTTP address, as
// the member record of the leader has it, and relays its answer: a curl
// user does not follow redirects. The request keeps its Authorization
// header and body, and is marked forwarded (headerForwarded): a node that
// receives a forwarded request it cannot serve either (leadership moved
// meanwhile) answers 503 with Retry-After, never forwards it again.
//
// The leader is dialled as this node serves its own HTTP address: plain,
// or over TLS with --http-tls-cert (Config.HTTPTLSCertFile).
func (a *httpAPI) forwardToLeader(ctx context.Context, w http.ResponseWriter, ar *apiRequest) {
	if ar.r.Header.Get(headerForwarded) != "" {
		writeWireError(w, &wire.Response{Code: wire.CodeUnavailable, Msg: "forwarded to a node that no longer leads: try again", RetryAfter: time.Second})
		return
	}
	addr := a.leaderHTTPAddr()
	if addr == "" || addr == a.s.HTTPAddr() {
		writeWireError(w, &wire.Response{Code: wire.CodeUnavailable, Msg: "no leader known", RetryAfter: time.Second})
		return
	}
	r := ar.r.WithContext(ctx) // the request's deadline, and the node's end
	r.Body = io.NopCloser(bytes.NewReader(ar.body))
	r.ContentLength = int64(len(ar.body))
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = a.forwardScheme()
			pr.Out.URL.Host = addr
			pr.Out.Host = addr
			pr.Out.Header.Set(headerForwarded, a.s.cfg.NodeID)
		},
		Transport:     a.forward,
		FlushInterval: -1, // a watch's events as they come
		BufferPool:    proxyBuffers,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			a.s.logger.Debug("http: forwarding to the leader failed", "leader", addr, "error", err)
			writeWireError(w, &wire.Response{Code: wire.CodeUnavailable, Msg: "the leader could not be reached: try again", RetryAfter: time.Second})
		},
	}
	if ar.rt.kind == routeWatch {
		// A forwarded watch is as long as the leader's stream.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
	}
	proxy.ServeHTTP(w, r)
}

// leaderHTTPAddr is the leader's HTTP address, "" when no leader is known
// or it serves none.
func (a *httpAPI) leaderHTTPAddr() string {
	id, _ := a.s.node.Leader()
	if id == "" {
		return ""
	}
	if id == a.s.cfg.NodeID {
		return a.s.HTTPAddr()
	}
	m, err := a.s.node.FSM().MemberInfo(id)
	if err != nil {
		return ""
	}
	return m.HTTPAddr
}

// proxyBuffers lends the reverse proxy its copy buffers.
var proxyBuffers = &bufferPool{}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// httpListener counts the HTTP address's connections with the client
// address's against MaxConnections (and the operators' reserve, as an
// HTTP connection is not bound to a token until its request arrives):
// a flood of HTTP connections cannot take the node's file descriptors.
// A connection past the cap is answered 503 and closed.
type httpListener struct {
	net.Listener
	s *Server
}

func (l httpListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		cl := &l.s.connLimits
		cl.mu.Lock()
		ok := cl.open < l.s.cfg.MaxConnections+OperatorConnReserve
		if ok {
			cl.open++
		}
		cl.mu.Unlock()
		if ok {
			return &countedConn{Conn: nc, s: l.s}, nil
		}
		cl.refusedNode.Add(1)
		if cl.lingeringRefuse.Add(1) > 64 {
			cl.lingeringRefuse.Add(-1)
			nc.Close()
			continue
		}
		go func() {
			defer cl.lingeringRefuse.Add(-1)
			refuseHTTP(nc)
		}()
	}
}

// refuseHTTP answers a connection over the cap and closes it.
func refuseHTTP(nc net.Conn) {
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(time.Second))
	body := `{"code":"too_many_connections","message":"this node is at its connection limit"}` + "\n"
	_, _ = io.WriteString(nc, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: "+
		strconv.Itoa(len(body))+"\r\n\r\n"+body)
}

// countedConn uncounts itself once when closed.
type countedConn struct {
	net.Conn
	s    *Server
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(c.s.releaseConn)
	return c.Conn.Close()
}
