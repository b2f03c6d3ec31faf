package client

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// # Pacing to a tenant's rate limit
//
// A node refuses a request over its tenant's rate limit at once, with the
// limit in the answer. Refused requests are cheap but not free: an
// application with many goroutines that keeps retrying would spend the
// node's CPU on refusals, which its neighbours feel. So once a tenant's
// request has been refused for its rate, this DB paces that tenant's later
// requests to the limit the node gave, on the client, before they are sent;
// the node then sees about as many requests as it admits. FoundationDB's
// clients likewise throttle a tag locally once the cluster says so.
//
// The pacer follows the latest limit a refusal carried, and is dropped
// after paceIdle without a refusal, so that a raised limit is used in full.
// It only delays: the node's own limit stays the one that counts.

// paceIdle is how long a pacer outlives the last refusal for rate.
const paceIdle = 10 * time.Second

type pacer struct {
	lim *rate.Limiter

	mu   sync.Mutex
	last time.Time // last refusal for rate
}

// pacers maps a tenant name ("" for the token's own tenant) to its pacer.
type pacers struct{ m sync.Map }

// paced reports whether op is charged against a tenant's limits.
func paced(op wire.Op) bool {
	switch op {
	case wire.OpGet, wire.OpSet, wire.OpDelete, wire.OpDeleteRange, wire.OpScan, wire.OpBatch,
		wire.OpReadVersion, wire.OpCommit, wire.OpCompareAndSwap, wire.OpWatch:
		return true
	}
	return false
}

// maxPaceWait bounds how long a request waits for its pacer. A longer wait
// (many goroutines queued on one tenant) is refused locally as rate
// limited, as the node would refuse it, so that a raised limit or a closed
// DB is not stuck behind reservations made at the old rate.
const maxPaceWait = time.Second

// paceMargin is the time a paced request must have left before its
// deadline once released, so that it is not sent only to time out (which
// for a write would leave its outcome unknown).
const paceMargin = 50 * time.Millisecond

// wait delays a request of tenant until its pacer lets it go. Without a
// pacer it returns at once. A request that would wait longer than
// maxPaceWait, or past ctx's deadline less paceMargin, is refused at once
// with an error matching ErrRateLimited and nothing is sent.
func (ps *pacers) wait(ctx context.Context, done <-chan struct{}, tenant string) error {
	v, ok := ps.m.Load(tenant)
	if !ok {
		return nil
	}
	p := v.(*pacer)
	p.mu.Lock()
	idle := time.Since(p.last) > paceIdle
	p.mu.Unlock()
	if idle {
		ps.m.CompareAndDelete(tenant, p)
		return nil
	}
	now := time.Now()
	r := p.lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if d == 0 {
		return nil
	}
	limit := d > maxPaceWait || !r.OK()
	if dl, ok := ctx.Deadline(); ok && now.Add(d+paceMargin).After(dl) {
		limit = true
	}
	if limit {
		r.CancelAt(now)
		return &Error{Code: Code(wire.CodeRateLimited), Message: "paced to the tenant's rate limit; no room in time",
			RetryAfter: min(d, maxPaceWait)}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	case <-done:
		r.Cancel()
		return ErrClosed
	}
}

// refused records a refusal for rate that carried the tenant's limit.
func (ps *pacers) refused(tenant string, resp *wire.Response) {
	if resp.RateLimit == 0 {
		return // the concurrency limit: nothing to pace to
	}
	limit, burst := rate.Limit(resp.RateLimit), int(min(max(resp.RateBurst, 1), 1<<30))
	now := time.Now()
	v, ok := ps.m.Load(tenant)
	if !ok {
		// The bucket starts empty: the node's bucket just ran dry.
		lim := rate.NewLimiter(limit, burst)
		lim.AllowN(now, burst)
		v, _ = ps.m.LoadOrStore(tenant, &pacer{lim: lim, last: now})
	}
	p := v.(*pacer)
	if p.lim.Limit() != limit {
		p.lim.SetLimit(limit)
	}
	if p.lim.Burst() != burst {
		p.lim.SetBurst(burst)
	}
	p.mu.Lock()
	p.last = now
	p.mu.Unlock()
	// A wait may have dropped it as idle in between: put it back.
	ps.m.Store(tenant, p)
}
