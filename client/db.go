package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// Retry backoff when no leader is known: the first retry is immediate, then
// 20ms doubling up to 500ms, until the caller's context ends.
const (
	minBackoff = 20 * time.Millisecond
	maxBackoff = 500 * time.Millisecond
)

// DB is a handle on a tenantkv cluster. It keeps at most one connection per
// node, follows the leader on its own, and multiplexes any number of
// concurrent requests over each connection. A DB is safe for concurrent use
// and should be shared; Close releases it.
type DB struct {
	opts      Options
	endpoints []string

	// Identity of the token, from the first hello. Immutable after Open.
	tenant   string
	operator bool

	ctx    context.Context // ends at Close; bounds dials
	cancel context.CancelFunc
	wg     sync.WaitGroup // dialers and every connection's reader and writer

	mu     sync.Mutex
	closed bool
	conns  map[string]*conn      // by address; may hold failed ones until next use
	dials  map[string]*dialState // dials in progress, shared by all who wait
	leader string                // client address of the leader, "" if unknown
	cur    int                   // endpoint to try while no leader is known

	pace pacers // per-tenant pacing to rate limits (pace.go)
}

type dialState struct {
	done chan struct{}
	c    *conn
	err  error
}

// Open connects to the first reachable of endpoints (client addresses,
// "host:port") and authenticates with opts.Token. Open does not look for the
// leader: requests find it on their own, following redirects to nodes that
// need not be in endpoints. Open fails with an error matching
// ErrPermissionDenied when the token is refused, and with one matching
// ErrUnavailable when no endpoint could be reached: when every endpoint
// refused or dropped the connection, it fails at once and does not wait
// for one to come up. A node that answers that it cannot authenticate yet
// (it just restarted and knows no leader, or has not caught up) is up but
// not ready: while one does, Open tries the endpoints again, backing off
// from 20ms to 500ms, until one accepts or ctx ends.
func Open(ctx context.Context, endpoints []string, opts *Options) (*DB, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	base := make([]string, 0, len(endpoints))
	seen := make(map[string]bool)
	for _, e := range endpoints {
		if e != "" && !seen[e] {
			seen[e] = true
			base = append(base, e)
		}
	}
	if len(base) == 0 {
		return nil, fmt.Errorf("%w: no endpoints", ErrInvalidArgument)
	}
	db := &DB{
		opts:      opts.withDefaults(),
		endpoints: base,
		conns:     make(map[string]*conn),
		dials:     make(map[string]*dialState),
	}
	db.ctx, db.cancel = context.WithCancel(context.Background())

	var lastErr error
	for round := 1; ; round++ {
		c, ep, waiting, err := db.openRound(ctx)
		if err == nil {
			db.tenant, db.operator = c.tenant, c.operator
			db.cur = max(slices.Index(db.endpoints, ep), 0)
			return db, nil
		}
		lastErr = err
		if !waiting || ctx.Err() != nil || !retryableDialError(err) {
			break
		}
		db.opts.Logger.Debug("tenantkv: no endpoint ready yet; trying again", "round", round, "error", err)
		if err := db.backoff(ctx, round+1, lastErr); err != nil {
			lastErr = err
			break
		}
	}
	db.Close()
	var se *Error
	if errors.As(lastErr, &se) || ctx.Err() != nil {
		return nil, lastErr
	}
	return nil, fmt.Errorf("%w: no endpoint reachable: %w", ErrUnavailable, lastErr)
}

// openRound tries each endpoint once, and the leader a follower names,
// until one accepts the hello. It returns the connection and its endpoint,
// or the last error and whether some node answered that it is up but not
// ready (no leader known, not caught up), when it is worth another round.
func (db *DB) openRound(ctx context.Context) (c *conn, ep string, waiting bool, err error) {
	eps := slices.Clone(db.endpoints)
	tried := map[string]bool{}
	for i := 0; i < len(eps); i++ {
		ep = eps[i]
		tried[ep] = true
		_, c, err = db.connect(ctx, ep)
		if err == nil {
			return c, ep, false, nil
		}
		if ctx.Err() != nil || !retryableDialError(err) {
			return nil, ep, false, err
		}
		var se *Error
		if errors.As(err, &se) {
			// The node answered: it cannot serve yet, or it is not the
			// leader and cannot judge the token. A follower that names
			// the leader is asked next, even if it is not among the
			// endpoints.
			waiting = true
			if se.leader != "" && !tried[se.leader] {
				eps = append(eps[:i+1:i+1], append([]string{se.leader}, eps[i+1:]...)...)
			}
		}
		db.opts.Logger.Debug("tenantkv: endpoint unreachable", "addr", ep, "error", err)
	}
	return nil, ep, waiting, err
}

// Close closes every connection and waits for the client's goroutines to
// end. Calls in flight return ErrClosed promptly (a write that was already
// sent also matches ErrCommitUnknown); later calls return ErrClosed. Close
// is idempotent and always returns nil.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		db.wg.Wait()
		return nil
	}
	db.closed = true
	conns := db.conns
	db.conns = nil
	db.mu.Unlock()
	db.cancel()
	for _, c := range conns {
		c.fail(ErrClosed)
	}
	db.wg.Wait()
	return nil
}

// Identity reports what the DB's token is: a tenant token names its tenant
// (operator false); an operator token has operator true and an empty tenant.
func (db *DB) Identity() (tenant string, operator bool) { return db.tenant, db.operator }

// Tenant returns a handle on the named tenant. It does no I/O: a tenant
// that does not exist, or that the token may not reach, shows up as an error
// of the first operation. With a tenant token an empty name means the
// token's own tenant. The handle is safe for concurrent use.
func (db *DB) Tenant(name string) *Tenant {
	if name == "" {
		name = db.tenant
	}
	return &Tenant{db: db, name: name}
}

// Ping checks that a node answers. Any node may answer it.
func (db *DB) Ping(ctx context.Context) error {
	var resp wire.Response
	return db.do(ctx, &wire.Request{Op: wire.OpPing}, &resp, true)
}

// connect returns a working connection to addr (or, when addr is empty, to
// the current leader target), dialling one if needed, and the address it
// chose. Concurrent callers share one dial; the dial is bounded by
// DialTimeout and Close, not by ctx, which bounds only this caller's wait.
func (db *DB) connect(ctx context.Context, addr string) (string, *conn, error) {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return addr, nil, ErrClosed
	}
	if addr == "" {
		addr = db.leader
		if addr == "" {
			addr = db.endpoints[db.cur]
		}
	}
	if c := db.conns[addr]; c != nil {
		if c.alive() {
			db.mu.Unlock()
			return addr, c, nil
		}
		delete(db.conns, addr)
	}
	d := db.dials[addr]
	if d == nil {
		d = &dialState{done: make(chan struct{})}
		db.dials[addr] = d
		db.wg.Add(1)
		go db.dial(addr, d)
	}
	db.mu.Unlock()
	select {
	case <-d.done:
		return addr, d.c, d.err
	case <-ctx.Done():
		return addr, nil, ctx.Err()
	}
}

func (db *DB) dial(addr string, d *dialState) {
	defer db.wg.Done()
	c, err := dialConn(db.ctx, addr, &db.opts)
	db.mu.Lock()
	delete(db.dials, addr)
	switch {
	case err == nil && db.closed:
		_ = c.nc.Close()
		c, err = nil, ErrClosed
	case err == nil:
		db.conns[addr] = c
		c.start(&db.wg)
		db.opts.Logger.Debug("tenantkv: connected", "addr", addr, "node", c.nodeID)
	case db.closed:
		c, err = nil, ErrClosed
	}
	d.c, d.err = c, err
	db.mu.Unlock()
	close(d.done)
}

// retryableDialError reports whether a failed dial may succeed elsewhere or
// later: network failures and a node without a leader, not a refused token.
func retryableDialError(err error) bool {
	var se *Error
	if errors.As(err, &se) {
		return se.Code == Code(wire.CodeNotLeader) || se.Code == Code(wire.CodeUnavailable)
	}
	var pe *protocolError
	return !errors.As(err, &pe) && !errors.Is(err, ErrClosed)
}

// forget records that addr cannot serve leader requests now: if it was the
// leader it no longer is, else the next endpoint is tried.
func (db *DB) forget(addr string) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.leader == addr {
		db.leader = ""
		return
	}
	if db.endpoints[db.cur] == addr {
		db.cur = (db.cur + 1) % len(db.endpoints)
	}
}

// follow records a redirect from addr to leader.
func (db *DB) follow(addr, leader string) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.leader == "" || db.leader == addr {
		db.leader = leader
	}
}

// do sends req to the leader (or, for stale reads, to whichever node is
// current) and waits for a successful answer in resp, retrying what
// provably did not reach a server: redirects, "unavailable" answers, failed
// dials and frames never written. idempotent requests (reads) are also
// retried after a connection broke with them in flight; any other request
// then fails with ErrCommitUnknown. A failed answer is returned as *Error.
func (db *DB) do(ctx context.Context, req *wire.Request, resp *wire.Response, idempotent bool) error {
	if paced(req.Op) {
		if err := db.pace.wait(ctx, db.ctx.Done(), req.Tenant); err != nil {
			return err
		}
	}
	var lastErr error
	retries := 0      // retries that counted towards the backoff
	followed := false // a redirect was followed
	free := false     // the next attempt goes without waiting
	for attempt := 0; ; attempt++ {
		switch {
		case attempt == 0:
		case free:
			free = false
		default:
			retries++
			if err := db.backoff(ctx, retries, lastErr); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return giveUp(err, lastErr)
		}
		addr, c, err := db.connect(ctx, "")
		if err != nil {
			switch {
			case errors.Is(err, ErrClosed):
				return ErrClosed
			case ctx.Err() != nil:
				return giveUp(ctx.Err(), lastErr)
			case !retryableDialError(err):
				return err
			}
			db.opts.Logger.Debug("tenantkv: dial failed", "addr", addr, "error", err)
			db.forget(addr)
			lastErr = err
			continue
		}

		err = c.roundTrip(ctx, req, resp)
		if err != nil {
			var ce *connError
			var se *sentCtxError
			switch {
			case errors.As(err, &ce):
				if errors.Is(ce.err, ErrClosed) {
					if ce.sent && !idempotent {
						return fmt.Errorf("%w: %w", ErrClosed, ErrCommitUnknown)
					}
					return ErrClosed
				}
				if ce.sent && !idempotent {
					return fmt.Errorf("%w: connection to %s: %w", ErrCommitUnknown, ce.addr, ce.err)
				}
				var pe *protocolError
				if errors.As(err, &pe) {
					return err
				}
				db.opts.Logger.Debug("tenantkv: connection broke", "addr", addr, "error", ce.err, "sent", ce.sent)
				lastErr = err
				continue
			case errors.As(err, &se):
				if idempotent {
					return giveUp(se.err, lastErr)
				}
				return fmt.Errorf("%w: %w", ErrCommitUnknown, se.err)
			case ctx.Err() != nil:
				return giveUp(err, lastErr) // ended before the request was queued
			default:
				return err // an unencodable request
			}
		}

		switch resp.Code {
		case wire.CodeOK:
			return nil
		case wire.CodeNotLeader:
			lastErr = errorOf(resp)
			if resp.Leader != "" && resp.Leader != addr {
				db.opts.Logger.Debug("tenantkv: following leader", "from", addr, "to", resp.Leader)
				db.follow(addr, resp.Leader)
				free = !followed // the first redirect is followed at once
				followed = true
				continue
			}
			db.forget(addr)
		case wire.CodeUnavailable:
			lastErr = errorOf(resp)
			db.forget(addr)
		case wire.CodeRateLimited:
			db.pace.refused(req.Tenant, resp)
			return errorOf(resp)
		default:
			return errorOf(resp)
		}
	}
}

// backoff waits before retry number attempt (1-based): not at all for the
// first, then 20ms doubling to 500ms, at least the server's RetryAfter hint
// if lastErr carries one (capped at maxBackoff).
func (db *DB) backoff(ctx context.Context, attempt int, lastErr error) error {
	d := time.Duration(0)
	if attempt > 1 {
		d = minBackoff << min(attempt-2, 5)
		d = min(d, maxBackoff)
	}
	var se *Error
	if errors.As(lastErr, &se) && se.RetryAfter > d {
		d = min(se.RetryAfter, maxBackoff)
	}
	if d == 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return giveUp(ctx.Err(), lastErr)
	case <-db.ctx.Done():
		return ErrClosed
	}
}

// giveUp is the error of a request whose context ended while retrying.
func giveUp(ctxErr, lastErr error) error {
	if lastErr == nil {
		return ctxErr
	}
	return fmt.Errorf("%w (last error: %v)", ctxErr, lastErr)
}
