package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/raft/fsm"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft"
)

// Watches are long polls over the tenant's write history (raft's Changes):
// a request names a key range and the version it resumes after, and is
// answered as soon as the history holds a change in the range after that
// version, or empty when its wait ends. Every answer says up to which
// version it is complete, so the client resumes exactly there: nothing is
// lost or repeated, across reconnects and leader changes, while the
// history reaches back that far (else ErrWatchTooOld).
const (
	// DefaultMaxWatches is the number of watches a tenant may have waiting
	// on one node at once when its MaxWatches limit is 0.
	DefaultMaxWatches = 100
	// DefaultWatchWait is how long a watch request waits for a change when
	// it does not say; maxWatchWait caps what it may ask.
	DefaultWatchWait = 5 * time.Second
	maxWatchWait     = 30 * time.Second
	// maxWatchBytes is about the most keys and values one answer carries.
	maxWatchBytes = 1 << 20
	// leaderCheck is how often a waiting watch checks that this node still
	// leads; a deposed leader hears of no new writes.
	leaderCheck = 250 * time.Millisecond
)

// watchHub wakes waiting watches when the FSM applies a change to their
// tenant, and counts them. The zero value is ready; the FSM observer is
// installed on first use. It is safe for concurrent use.
type watchHub struct {
	once    sync.Once
	mu      sync.Mutex
	tenants map[keyspace.TenantID]*tenantWatches
}

type tenantWatches struct {
	active  int
	changed chan struct{} // closed and replaced on every change
}

func (h *watchHub) start(m *fsm.Machine) {
	h.once.Do(func() { m.OnApplied(h.notify) })
}

// notify is the FSM observer: it runs on the apply goroutine and only
// closes channels. nil means every tenant.
func (h *watchHub) notify(ids []keyspace.TenantID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	wake := func(tw *tenantWatches) {
		close(tw.changed)
		tw.changed = make(chan struct{})
	}
	if ids == nil {
		for _, tw := range h.tenants {
			wake(tw)
		}
		return
	}
	for _, id := range ids {
		if tw := h.tenants[id]; tw != nil {
			wake(tw)
		}
	}
}

// acquire counts a watch of tenant id against limit; ok is false when the
// tenant is at its limit.
func (h *watchHub) acquire(id keyspace.TenantID, limit uint64) (release func(), ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tenants == nil {
		h.tenants = make(map[keyspace.TenantID]*tenantWatches)
	}
	tw := h.tenants[id]
	if tw == nil {
		tw = &tenantWatches{changed: make(chan struct{})}
		h.tenants[id] = tw
	}
	if uint64(tw.active) >= limit {
		if tw.active == 0 {
			delete(h.tenants, id)
		}
		return nil, false
	}
	tw.active++
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if tw.active--; tw.active == 0 {
			delete(h.tenants, id)
		}
	}, true
}

// changed returns a channel closed at the next change of tenant id. The
// caller must hold a watch of id (acquire).
func (h *watchHub) changed(id keyspace.TenantID) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.tenants[id].changed
}

func watchLimit(t *keyspace.Tenant) uint64 {
	if t.Limits.MaxWatches == 0 {
		return DefaultMaxWatches
	}
	return t.Limits.MaxWatches
}

// handleWatch serves one long poll of a watch.
//
// A poll is a request like any other: it costs one operation against the
// tenant's rate limit when it arrives (so a watch that resumes after a
// delivered batch pays again, as etcd's limits count every watch request),
// holds one slot of the tenant's concurrency limit while it waits, and is
// refused with the same rate-limited answer (and RetryAfter) as a get.
//
// It ends with ErrPermissionDenied as soon as its token is revoked or
// expires or its tenant is deleted, and with ErrTenantLocked when the
// tenant is locked: within leaderCheck while it waits, and before any
// change applied after the revocation is delivered (fsm.Machine.ChangesAs
// judges the token in the snapshot the changes are read from).
func (s *Server) handleWatch(ctx context.Context, p *principal, req *wire.Request) *wire.Response {
	resp, err := s.watch(ctx, p, req)
	if err != nil {
		return s.txnErrorResponse(err)
	}
	return resp
}

func (s *Server) watch(ctx context.Context, p *principal, req *wire.Request) (*wire.Response, error) {
	if err := keyspace.CheckRange(req.Key, req.End); err != nil {
		return nil, err
	}
	if req.Wait < 0 {
		return nil, fmt.Errorf("%w: negative wait", ErrBadRequest)
	}
	wait := req.Wait
	if wait == 0 {
		wait = DefaultWatchWait
	}
	wait = min(wait, maxWatchWait)
	if !s.node.IsLeader() {
		return nil, raft.ErrNotLeader
	}
	t, releaseSlot, throttled, err := s.admitData(p, req, opScan)
	if err != nil || throttled != nil {
		return throttled, err
	}
	defer releaseSlot()
	s.watches.start(s.node.FSM())
	release, ok := s.acquireWatch(ctx, t) // httpapi_watch.go: an HTTP stream's polls share its one
	if !ok {
		s.usage.record(t.ID, opScan, outcomeThrottled, 0, 0, 0)
		return nil, fmt.Errorf("%w: tenant %q has %d watches waiting on this node", ErrRateLimited, t.Name, watchLimit(t))
	}
	defer release()
	if err := s.node.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(leaderCheck)
	defer tick.Stop()
	r := command.KeyRange{Start: req.Key, End: req.End}
	after := req.ReadVersion
	for {
		// Subscribe before reading, so no change slips in between.
		changed := s.watches.changed(t.ID)
		if err := s.stillValid(p); err != nil {
			return nil, err
		}
		cur, err := s.resolveTenant(p, req.Tenant)
		if err != nil {
			return nil, err
		}
		if cur.ID != t.ID || (req.TenantID != 0 && req.TenantID != uint64(t.ID)) {
			return nil, fmt.Errorf("%w: %q was deleted (and re-created) since the watch began", fsm.ErrTenantNotFound, t.Name)
		}
		if !cur.State.AllowsReads() {
			return nil, fsm.ErrTenantLocked
		}
		vi, err := s.node.FSM().TenantVersion(t.ID)
		if err != nil {
			return nil, err
		}
		if after > vi.Version {
			return nil, versionAhead(s, t, after, vi.Version)
		}
		changes, upTo, err := s.node.FSM().ChangesAs(p.tokenID, t.ID, after, r, maxWatchBytes)
		if errors.Is(err, fsm.ErrTokenNotFound) {
			return nil, ErrPermissionDenied // revoked before these changes
		}
		if err != nil {
			return nil, err
		}
		if err := s.stillValid(p); err != nil {
			return nil, err // expired meanwhile
		}
		if len(changes) > 0 {
			resp := &wire.Response{DataVersion: upTo, TenantID: uint64(t.ID), Events: make([]wire.Event, len(changes))}
			n := 0
			for i, c := range changes {
				resp.Events[i] = wire.Event{Version: c.Version, Kind: mutKind(c.Kind), Key: c.Key, Value: c.Value, End: c.End}
				n += len(c.Key) + len(c.Value)
			}
			s.usage.record(t.ID, opScan, outcomeOK, 0, n, 0)
			return resp, nil
		}
		if upTo < vi.Version {
			// The read stopped early, at its bound on history bytes read
			// (a narrow watch behind a long history): say how far it got,
			// and the client polls again from there, paying for it.
			return &wire.Response{DataVersion: upTo, TenantID: uint64(t.ID)}, nil
		}
		after = upTo // nothing in the range up to here
	waiting:
		for {
			select {
			case <-changed:
				break waiting
			case <-tick.C:
				if !s.node.IsLeader() {
					return nil, raft.ErrNotLeader
				}
				// A revocation or an expiry wakes nobody: look.
				if err := s.stillValid(p); err != nil {
					return nil, err
				}
				if cur, err := s.resolveTenant(p, req.Tenant); err != nil || cur.ID != t.ID || !cur.State.AllowsReads() {
					break waiting // the loop's checks say why
				}
			case <-deadline.C:
				return &wire.Response{DataVersion: after, TenantID: uint64(t.ID)}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
}

func mutKind(k command.OpKind) uint8 {
	switch k {
	case command.OpSet:
		return wire.MutSet
	case command.OpDelete:
		return wire.MutDelete
	default:
		return wire.MutDeleteRange
	}
}
