package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/store"
)

const (
	// exportIdle is how long an export cursor lives without being used.
	exportIdle = time.Minute
	// maxExports caps the export cursors open at once on one node.
	maxExports = 64
)

// exportSession pins a store snapshot so that every page of one tenant's
// export comes from the same point in time.
type exportSession struct {
	snap     *store.SnapshotReader
	tenant   *keyspace.Tenant
	lastUsed time.Time
	busy     bool
}

// exports holds the open export cursors. It is safe for concurrent use.
type exports struct {
	mu       sync.Mutex
	sessions map[string]*exportSession
}

// open registers a cursor over snap; snap is closed if it cannot be.
func (e *exports) open(snap *store.SnapshotReader, t *keyspace.Tenant) (string, *exportSession, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		snap.Close()
		return "", nil, err
	}
	id := hex.EncodeToString(b[:])
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sessions == nil {
		e.sessions = map[string]*exportSession{}
	}
	if len(e.sessions) >= maxExports {
		snap.Close()
		return "", nil, fmt.Errorf("%w: too many exports in progress", ErrRateLimited)
	}
	sess := &exportSession{snap: snap, tenant: t, lastUsed: time.Now(), busy: true}
	e.sessions[id] = sess
	return id, sess, nil
}

func (e *exports) acquire(id string) (*exportSession, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	sess, ok := e.sessions[id]
	if !ok || sess.busy {
		return nil, ErrCursorNotFound
	}
	sess.busy = true
	return sess, nil
}

func (e *exports) release(id string, sess *exportSession, done bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	sess.busy = false
	sess.lastUsed = time.Now()
	if done || e.sessions[id] != sess {
		if e.sessions[id] == sess {
			delete(e.sessions, id)
		}
		sess.snap.Close()
	}
}

// sweep closes cursors idle for longer than exportIdle, and all of them
// when closing is set.
func (e *exports) sweep(closing bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, sess := range e.sessions {
		if closing || (!sess.busy && time.Since(sess.lastUsed) > exportIdle) {
			delete(e.sessions, id)
			if !sess.busy {
				sess.snap.Close()
			}
		}
	}
}

func (s *Server) sweepExports() {
	defer s.wg.Done()
	t := time.NewTicker(exportIdle / 4)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			s.exports.sweep(true)
			return
		case <-t.C:
			s.exports.sweep(false)
		}
	}
}

// exportTenant serves one page of a consistent export of a tenant. The first
// request (no cursor) takes a snapshot after a read barrier and answers with
// the tenant's record; later ones continue from Key in the same snapshot.
func (s *Server) exportTenant(ctx context.Context, p *principal, req *wire.Request) (*wire.Response, error) {
	var id string
	var sess *exportSession
	var err error
	resp := &wire.Response{}
	if req.Cursor == "" {
		t, err := s.lookupLinearizable(ctx, req.Name)
		if err != nil {
			return nil, err
		}
		id, sess, err = s.exports.open(s.store.NewSnapshot(), t)
		if err != nil {
			return nil, err
		}
		resp.Tenant = s.tenantInfo(t)
		s.auditNote(ctx, t, p.tokenID, "export", "") // audit.go
	} else {
		id = req.Cursor
		if sess, err = s.exports.acquire(id); err != nil {
			return nil, err
		}
	}
	done := true
	defer func() { s.exports.release(id, sess, done) }()
	view, err := sess.snap.Tenant(sess.tenant.ID)
	if err != nil {
		return nil, err
	}
	it, err := view.NewIterator(req.Key, nil, false)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	if _, err := fillPage(resp, it, req.Limit); err != nil {
		return nil, err
	}
	if resp.More {
		done = false
		resp.Next = id
	}
	return resp, nil
}
