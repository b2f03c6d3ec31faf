package client

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// fakeServer speaks the client protocol well enough to test the client: it
// authenticates, keeps keys per tenant, pages scans, serves the admin
// operations, and can be told to redirect, reorder, stall or drop.
type fakeServer struct {
	t    testing.TB
	ln   net.Listener
	addr string
	wg   sync.WaitGroup

	mu       sync.Mutex
	tokens   map[string]fakeIdentity // by secret
	tenants  map[string]*wire.TenantInfo
	data     map[string]map[string][]byte
	exports  map[string][]wire.KV // export snapshots by cursor
	nextID   uint64
	pageCap  int // most pairs per scan page
	listPage int // most tenants per list page
	// redirect, when its code is not zero, answers every request that must
	// reach the leader (all but ping, hello and stale reads).
	redirectCode   wire.Code
	redirectLeader string
	reorder        bool // answer requests in reversed batches
	moreWhenFull   bool // set More on every full scan page, as a lazy server may
	hook           func(req *wire.Request) fakeAction
	conns          map[net.Conn]bool
	reqs           []wire.Request // every request after the hello
	hellos         int
	// helloRefusals answers that many hellos more as a node that is up but
	// not ready (no leader known) does.
	helloRefusals int
	inversions    int // responses written with an ID below an earlier one
}

type fakeIdentity struct {
	secret   string
	id       string // token ID
	operator bool
	tenant   string
	readOnly bool
	created  time.Time
	expires  time.Time
}

// fakeAction tells the fake what to do with one request.
type fakeAction struct {
	drop  bool           // close the connection without answering
	reply *wire.Response // answer this instead (its ID is filled in)
}

const (
	opToken   = "op-token"
	acmeToken = "acme-token"
)

func newFakeServer(t testing.TB) *fakeServer {
	return newFakeServerTLS(t, nil)
}

func newFakeServerTLS(t testing.TB, cfg *tls.Config) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	s := &fakeServer{
		t:    t,
		ln:   ln,
		addr: ln.Addr().String(),
		tokens: map[string]fakeIdentity{
			opToken:   {secret: opToken, id: "00000000000000aa", operator: true},
			acmeToken: {secret: acmeToken, id: "00000000000000bb", tenant: "acme"},
		},
		tenants:  make(map[string]*wire.TenantInfo),
		data:     make(map[string]map[string][]byte),
		exports:  make(map[string][]wire.KV),
		nextID:   1,
		pageCap:  1000,
		listPage: 1000,
		conns:    make(map[net.Conn]bool),
	}
	s.createTenant("acme", nil)
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.Close)
	return s
}

// Close stops the server, closes every connection and waits for its
// goroutines.
func (s *fakeServer) Close() {
	s.ln.Close()
	s.dropConns()
	s.wg.Wait()
}

// dropConns closes every open connection.
func (s *fakeServer) dropConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

func (s *fakeServer) set(f func(s *fakeServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// count returns how many requests of op the server has received.
func (s *fakeServer) count(op wire.Op) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for i := range s.reqs {
		if s.reqs[i].Op == op {
			n++
		}
	}
	return n
}

// requests returns the requests of op the server has received.
func (s *fakeServer) requests(op wire.Op) []wire.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []wire.Request
	for _, r := range s.reqs {
		if r.Op == op {
			out = append(out, r)
		}
	}
	return out
}

func (s *fakeServer) helloCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hellos
}

func (s *fakeServer) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[nc] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serveConn(nc)
	}
}

// fakeConn serialises writes to one connection.
type fakeConn struct {
	mu     sync.Mutex
	nc     net.Conn
	lastID uint64
}

func (s *fakeServer) serveConn(nc net.Conn) {
	defer s.wg.Done()
	defer func() {
		nc.Close()
		s.mu.Lock()
		delete(s.conns, nc)
		s.mu.Unlock()
	}()
	fc := &fakeConn{nc: nc}
	fr := wire.NewFrameReader(nc)
	body, err := fr.Read(wire.MaxHelloFrame)
	if err != nil {
		return
	}
	var req wire.Request
	if err := wire.DecodeRequest(body, &req); err != nil || req.Op != wire.OpHello {
		s.write(fc, &wire.Response{ID: req.ID, Code: wire.CodeBadRequest, Msg: "first request must be hello"})
		return
	}
	s.mu.Lock()
	s.hellos++
	id, ok := s.tokens[req.Token]
	notReady := s.helloRefusals > 0
	if notReady {
		s.helloRefusals--
	}
	s.mu.Unlock()
	if notReady {
		s.write(fc, &wire.Response{ID: req.ID, Code: wire.CodeUnavailable, Msg: "node not ready to authenticate: try again or another node"})
		return
	}
	if !ok || (!id.expires.IsZero() && time.Now().After(id.expires)) {
		s.write(fc, &wire.Response{ID: req.ID, Code: wire.CodePermissionDenied, Msg: "invalid token"})
		return
	}
	resp := &wire.Response{ID: req.ID, Version: wire.ProtocolVersion, NodeID: s.addr, Operator: id.operator}
	if !id.operator {
		resp.Tenant = &wire.TenantInfo{Name: id.tenant}
	}
	if !s.write(fc, resp) {
		return
	}

	var inflight sync.WaitGroup
	defer inflight.Wait()
	var batch chan *wire.Request
	s.mu.Lock()
	reorder := s.reorder
	s.mu.Unlock()
	if reorder {
		batch = make(chan *wire.Request, 64)
		defer close(batch)
		inflight.Go(func() { s.answerReversed(fc, id, batch) })
	}
	for {
		body, err := fr.Read(wire.DefaultMaxFrame)
		if err != nil {
			return
		}
		req := new(wire.Request)
		if err := wire.DecodeRequest(body, req); err != nil {
			s.write(fc, &wire.Response{Code: wire.CodeBadRequest, Msg: err.Error()})
			continue
		}
		s.mu.Lock()
		s.reqs = append(s.reqs, *req)
		s.mu.Unlock()
		if batch != nil {
			batch <- req
			continue
		}
		inflight.Go(func() { s.serveRequest(fc, id, req) })
	}
}

// serveRequest applies the hook to one request and answers it.
func (s *fakeServer) serveRequest(fc *fakeConn, id fakeIdentity, req *wire.Request) {
	s.mu.Lock()
	hook := s.hook
	s.mu.Unlock()
	var act fakeAction
	if hook != nil {
		act = hook(req)
	}
	switch {
	case act.drop:
		fc.nc.Close()
	case act.reply != nil:
		act.reply.ID = req.ID
		s.write(fc, act.reply)
	default:
		s.write(fc, s.handle(id, req))
	}
}

// answerReversed collects requests that arrive close together and answers
// each batch in reverse order.
func (s *fakeServer) answerReversed(fc *fakeConn, id fakeIdentity, in <-chan *wire.Request) {
	for req := range in {
		reqs := []*wire.Request{req}
		timer := time.NewTimer(2 * time.Millisecond)
	collect:
		for len(reqs) < 16 {
			select {
			case r, ok := <-in:
				if !ok {
					break collect
				}
				reqs = append(reqs, r)
			case <-timer.C:
				break collect
			}
		}
		timer.Stop()
		for _, r := range slices.Backward(reqs) {
			s.serveRequest(fc, id, r)
		}
	}
}

func (s *fakeServer) write(fc *fakeConn, resp *wire.Response) bool {
	frame, err := wire.AppendResponseFrame(nil, resp)
	if err != nil {
		s.t.Errorf("fake: encode response: %v", err)
		return false
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if resp.ID < fc.lastID {
		s.mu.Lock()
		s.inversions++
		s.mu.Unlock()
	}
	fc.lastID = resp.ID
	_, err = fc.nc.Write(frame)
	return err == nil
}

// handle answers one request from the fake's state.
func (s *fakeServer) handle(id fakeIdentity, req *wire.Request) *wire.Response {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &wire.Response{ID: req.ID}
	fail := func(code wire.Code, msg string) *wire.Response {
		resp.Code, resp.Msg = code, msg
		return resp
	}
	stale := req.Stale && (req.Op == wire.OpGet || req.Op == wire.OpScan)
	if s.redirectCode != wire.CodeOK && req.Op != wire.OpPing && !stale {
		resp.Code, resp.Leader = s.redirectCode, s.redirectLeader
		return resp
	}
	// Revocation, expiry and renames take effect at once, as on a server.
	cur, ok := s.tokens[id.secret]
	if !ok || (!cur.expires.IsZero() && time.Now().After(cur.expires)) {
		return fail(wire.CodePermissionDenied, "permission denied")
	}
	id = cur
	switch req.Op {
	case wire.OpPing:
		resp.NodeID = s.addr
		return resp
	case wire.OpGet, wire.OpSet, wire.OpDelete, wire.OpDeleteRange, wire.OpScan, wire.OpBatch:
		tenant := req.Tenant
		if tenant == "" {
			tenant = id.tenant
		}
		if !id.operator && tenant != id.tenant {
			return fail(wire.CodePermissionDenied, "permission denied")
		}
		kv, ok := s.data[tenant]
		if !ok {
			return fail(wire.CodeTenantNotFound, "tenantkv: tenant not found: "+tenant)
		}
		write := req.Op != wire.OpGet && req.Op != wire.OpScan
		switch st := s.tenants[tenant].State; {
		case write && id.readOnly:
			return fail(wire.CodePermissionDenied, "permission denied")
		case st == "locked":
			return fail(wire.CodeTenantLocked, "")
		case write && st == "read-only":
			return fail(wire.CodeTenantReadOnly, "")
		}
		if req.Op == wire.OpBatch {
			return s.handleBatch(s.tenants[tenant], kv, req, resp)
		}
		return s.handleData(s.tenants[tenant], kv, req, resp)
	case wire.OpGetTenant:
		if !id.operator && req.Name != "" && req.Name != id.tenant {
			return fail(wire.CodePermissionDenied, "permission denied")
		}
		name := req.Name
		if name == "" {
			name = id.tenant
		}
		t, ok := s.tenants[name]
		if !ok {
			return fail(wire.CodeTenantNotFound, "")
		}
		resp.Tenant = s.withUsage(t)
		return resp
	}
	if !id.operator {
		return fail(wire.CodePermissionDenied, "permission denied")
	}
	switch req.Op {
	case wire.OpCreateTenant:
		if req.Name == "" || req.Name != stringsToLowerASCII(req.Name) {
			return fail(wire.CodeInvalidName, "tenantkv: invalid tenant name: "+req.Name)
		}
		if _, ok := s.tenants[req.Name]; ok {
			return fail(wire.CodeTenantExists, "")
		}
		resp.Tenant = s.createTenant(req.Name, req.Config)
	case wire.OpDeleteTenant:
		if _, ok := s.tenants[req.Name]; !ok {
			return fail(wire.CodeTenantNotFound, "")
		}
		delete(s.tenants, req.Name)
		delete(s.data, req.Name)
	case wire.OpListTenants:
		names := make([]string, 0, len(s.tenants))
		for n, t := range s.tenants {
			if n > req.After && (req.State == "" || t.State == req.State) {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		limit := s.listPage
		if req.Limit > 0 && req.Limit < limit {
			limit = req.Limit
		}
		if len(names) > limit {
			names = names[:limit]
			resp.Next = names[len(names)-1]
		}
		for _, n := range names {
			resp.Tenants = append(resp.Tenants, *s.withUsage(s.tenants[n]))
		}
	case wire.OpUpdateTenant:
		return s.updateTenant(req, resp)
	case wire.OpNewToken:
		if _, ok := s.tenants[req.Name]; !ok && req.Name != "" {
			return fail(wire.CodeTenantNotFound, "")
		}
		n := len(s.tokens) + 1
		idn := fmt.Sprintf("%016x", n)
		tok := fmt.Sprintf("tkv_%s_secret%d", idn, n)
		ident := fakeIdentity{secret: tok, id: idn, operator: req.Name == "", tenant: req.Name,
			readOnly: req.ReadOnly, created: time.Now().UTC()}
		if req.TTL > 0 {
			ident.expires = ident.created.Add(req.TTL)
		}
		s.tokens[tok] = ident
		resp.Token, resp.TokenID = tok, idn
	case wire.OpListTokens:
		if _, ok := s.tenants[req.Name]; !ok {
			return fail(wire.CodeTenantNotFound, "")
		}
		for _, ident := range s.tokens {
			if ident.tenant == req.Name && !ident.operator {
				resp.Tokens = append(resp.Tokens, wire.TokenInfo{ID: ident.id, Tenant: ident.tenant,
					ReadOnly: ident.readOnly, CreatedAt: ident.created, ExpiresAt: ident.expires})
			}
		}
		sort.Slice(resp.Tokens, func(i, j int) bool { return resp.Tokens[i].ID < resp.Tokens[j].ID })
	case wire.OpRevokeToken:
		for secret, ident := range s.tokens {
			if ident.id == req.Name {
				delete(s.tokens, secret)
				return resp
			}
		}
		return fail(wire.CodeTokenNotFound, "")
	case wire.OpExportTenant:
		return s.exportTenant(req, resp)
	case wire.OpClusterStatus:
		resp.Cluster = &wire.ClusterStatus{NodeID: "n1", LeaderID: "n1", Term: 3, AppliedIndex: 10, CommitIndex: 11,
			Members: []wire.Member{{ID: "n1", RaftAddr: "r1", ClientAddr: s.addr, HTTPAddr: "h1", Suffrage: "voter", Leader: true}}}
	case wire.OpClusterRemove, wire.OpClusterJoin:
		if req.Name == "" {
			return fail(wire.CodeBadRequest, "node id required")
		}
		if req.Op == wire.OpClusterRemove && req.Name == "nobody" {
			return fail(wire.CodeNotFound, "tenantkv: member not found: nobody")
		}
	default:
		return fail(wire.CodeUnknownOp, "")
	}
	return resp
}

func stringsToLowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// createTenant adds a tenant; the caller holds s.mu (or is the constructor).
func (s *fakeServer) createTenant(name string, cfg *wire.TenantConfig) *wire.TenantInfo {
	t := &wire.TenantInfo{ID: s.nextID, Name: name, State: "active", CreatedAt: time.Unix(1700000000, 0).UTC()}
	s.nextID++
	if cfg != nil {
		get := func(p *uint64) uint64 {
			if p == nil {
				return 0
			}
			return *p
		}
		t.Limits = wire.Limits{MaxBytes: get(cfg.MaxBytes), MaxKeys: get(cfg.MaxKeys), OpsPerSec: get(cfg.OpsPerSec),
			Burst: get(cfg.Burst), MaxConcurrent: get(cfg.MaxConcurrent), MaxWatches: get(cfg.MaxWatches)}
		t.Labels = cfg.Labels
	}
	s.tenants[name] = t
	s.data[name] = make(map[string][]byte)
	return t
}

func (s *fakeServer) handleData(t *wire.TenantInfo, kv map[string][]byte, req *wire.Request, resp *wire.Response) *wire.Response {
	switch req.Op {
	case wire.OpGet:
		v, ok := kv[string(req.Key)]
		if !ok {
			resp.Code = wire.CodeNotFound
			return resp
		}
		resp.Value = bytes.Clone(v)
	case wire.OpSet:
		old, had := kv[string(req.Key)]
		kv[string(req.Key)] = bytes.Clone(req.Value)
		if overQuota(t, kv) {
			if had {
				kv[string(req.Key)] = old
			} else {
				delete(kv, string(req.Key))
			}
			resp.Code = wire.CodeQuotaExceeded
		}
	case wire.OpDelete:
		delete(kv, string(req.Key))
	case wire.OpDeleteRange, wire.OpScan:
		if len(req.End) > 0 && bytes.Compare(req.Key, req.End) >= 0 {
			resp.Code = wire.CodeInvalidRange
			return resp
		}
		var keys []string
		for k := range kv {
			if k >= string(req.Key) && (len(req.End) == 0 || k < string(req.End)) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		if req.Op == wire.OpDeleteRange {
			for _, k := range keys {
				delete(kv, k)
			}
			return resp
		}
		if req.Reverse {
			slices.Reverse(keys)
		}
		limit := s.pageCap
		if req.Limit > 0 && req.Limit < limit {
			limit = req.Limit
		}
		if len(keys) > limit {
			keys, resp.More = keys[:limit], true
		}
		if s.moreWhenFull && len(keys) == limit {
			resp.More = true
		}
		for _, k := range keys {
			resp.KVs = append(resp.KVs, wire.KV{Key: []byte(k), Value: bytes.Clone(kv[k])})
		}
	}
	return resp
}

// withUsage returns a copy of t with its exact usage; the caller holds s.mu.
func (s *fakeServer) withUsage(t *wire.TenantInfo) *wire.TenantInfo {
	c := *t
	c.Usage.Keys, c.Usage.LogicalBytes = usageOf(s.data[t.Name])
	return &c
}

func usageOf(kv map[string][]byte) (keys, nbytes uint64) {
	for k, v := range kv {
		keys++
		nbytes += uint64(len(k) + len(v))
	}
	return keys, nbytes
}

// overQuota reports whether kv breaks t's storage limits.
func overQuota(t *wire.TenantInfo, kv map[string][]byte) bool {
	keys, nbytes := usageOf(kv)
	return (t.Limits.MaxKeys != 0 && keys > t.Limits.MaxKeys) || (t.Limits.MaxBytes != 0 && nbytes > t.Limits.MaxBytes)
}

// updateTenant serves OpUpdateTenant; the caller holds s.mu.
func (s *fakeServer) updateTenant(req *wire.Request, resp *wire.Response) *wire.Response {
	t, ok := s.tenants[req.Name]
	if !ok {
		resp.Code = wire.CodeTenantNotFound
		return resp
	}
	switch req.State {
	case "", "active", "read-only", "locked":
	default:
		resp.Code, resp.Msg = wire.CodeInvalidArgument, "tenantkv: invalid state "+req.State
		return resp
	}
	if req.NewName != "" && req.NewName != t.Name {
		if _, taken := s.tenants[req.NewName]; taken {
			resp.Code = wire.CodeTenantExists
			return resp
		}
		old := t.Name
		delete(s.tenants, old)
		s.data[req.NewName] = s.data[old]
		delete(s.data, old)
		t.Name = req.NewName
		s.tenants[t.Name] = t
		for secret, ident := range s.tokens {
			if ident.tenant == old {
				ident.tenant = t.Name
				s.tokens[secret] = ident
			}
		}
	}
	if req.State != "" {
		t.State = req.State
	}
	if c := req.Config; c != nil {
		set := func(dst *uint64, src *uint64) {
			if src != nil {
				*dst = *src
			}
		}
		set(&t.Limits.MaxBytes, c.MaxBytes)
		set(&t.Limits.MaxKeys, c.MaxKeys)
		set(&t.Limits.OpsPerSec, c.OpsPerSec)
		set(&t.Limits.Burst, c.Burst)
		set(&t.Limits.MaxConcurrent, c.MaxConcurrent)
		set(&t.Limits.MaxWatches, c.MaxWatches)
		if labels, ok := c.LabelsUpdate(); ok {
			t.Labels = labels
		}
	}
	resp.Tenant = s.withUsage(t)
	return resp
}

// handleBatch applies a batch atomically: every mutation or none.
func (s *fakeServer) handleBatch(t *wire.TenantInfo, kv map[string][]byte, req *wire.Request, resp *wire.Response) *wire.Response {
	next := make(map[string][]byte, len(kv))
	for k, v := range kv {
		next[k] = v
	}
	size := 0
	for i, m := range req.Muts {
		size += len(m.Key) + len(m.Value) + len(m.End)
		switch m.Kind {
		case wire.MutSet:
			if len(m.Key) == 0 {
				resp.Code, resp.Msg = wire.CodeInvalidKey, fmt.Sprintf("mutation %d", i)
				return resp
			}
			next[string(m.Key)] = bytes.Clone(m.Value)
		case wire.MutDelete:
			delete(next, string(m.Key))
		case wire.MutDeleteRange:
			for k := range next {
				if k >= string(m.Key) && (len(m.End) == 0 || k < string(m.End)) {
					delete(next, k)
				}
			}
		default:
			resp.Code = wire.CodeBadRequest
			return resp
		}
	}
	if size > 10<<20 {
		resp.Code = wire.CodeTxTooLarge
		return resp
	}
	if overQuota(t, next) {
		resp.Code = wire.CodeQuotaExceeded
		return resp
	}
	clear(kv)
	for k, v := range next {
		kv[k] = v
	}
	return resp
}

// exportTenant serves OpExportTenant from a copy of the tenant's pairs
// taken by the first request; the caller holds s.mu.
func (s *fakeServer) exportTenant(req *wire.Request, resp *wire.Response) *wire.Response {
	var snap []wire.KV
	if req.Cursor == "" {
		t, ok := s.tenants[req.Name]
		if !ok {
			resp.Code = wire.CodeTenantNotFound
			return resp
		}
		resp.Tenant = s.withUsage(t)
		for k, v := range s.data[req.Name] {
			snap = append(snap, wire.KV{Key: []byte(k), Value: bytes.Clone(v)})
		}
		sort.Slice(snap, func(i, j int) bool { return bytes.Compare(snap[i].Key, snap[j].Key) < 0 })
	} else {
		var ok bool
		if snap, ok = s.exports[req.Cursor]; !ok {
			resp.Code, resp.Msg = wire.CodeInvalidArgument, "tenantkv: export cursor not found"
			return resp
		}
		delete(s.exports, req.Cursor)
	}
	i := sort.Search(len(snap), func(i int) bool { return bytes.Compare(snap[i].Key, req.Key) >= 0 })
	snap = snap[i:]
	limit := s.pageCap
	if req.Limit > 0 && req.Limit < limit {
		limit = req.Limit
	}
	if len(snap) > limit {
		resp.KVs, resp.More = snap[:limit], true
		resp.Next = fmt.Sprintf("cur%d", len(s.exports)+len(s.reqs))
		s.exports[resp.Next] = snap
	} else {
		resp.KVs = snap
	}
	return resp
}
