package server

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/tenantkv/tenantkv/keyspace"
)

// limiter enforces per-tenant rate and concurrency limits on the node that
// receives a request, before any raft or storage work. A throttled request
// costs one map lookup and one token-bucket check.
//
// It is safe for concurrent use.
type limiter struct {
	tenants sync.Map // keyspace.TenantID -> *tenantLimit
}

type tenantLimit struct {
	mu       sync.Mutex
	ops      uint64 // configured operations per second; 0 = unlimited
	burst    uint64
	bucket   *rate.Limiter
	maxConc  atomic.Int64 // 0 = unlimited
	inFlight atomic.Int64
}

// throttle describes a refusal: when to try again, and, for the rate limit,
// the limit itself (ops per second and burst; zero for the concurrency
// limit), which the client library paces the tenant's requests to.
type throttle struct {
	retryAfter  time.Duration
	rate, burst uint64
}

// admit charges one operation to tenant t. It returns a release function to
// call when the request is done, or ErrRateLimited and what to tell the
// client.
func (l *limiter) admit(t *keyspace.Tenant) (release func(), th throttle, err error) {
	if t.Limits.OpsPerSec == 0 && t.Limits.MaxConcurrent == 0 {
		return noRelease, throttle{}, nil
	}
	tl := l.get(t)
	if b := tl.bucketFor(t.Limits); b != nil && !b.Allow() {
		return nil, throttle{
			retryAfter: time.Duration(float64(time.Second) / float64(t.Limits.OpsPerSec)),
			rate:       t.Limits.OpsPerSec, burst: effectiveBurst(t.Limits),
		}, ErrRateLimited
	}
	if maxc := tl.maxConc.Load(); maxc > 0 {
		if tl.inFlight.Add(1) > maxc {
			tl.inFlight.Add(-1)
			return nil, throttle{retryAfter: time.Millisecond}, ErrRateLimited
		}
		return func() { tl.inFlight.Add(-1) }, throttle{}, nil
	}
	return noRelease, throttle{}, nil
}

func noRelease() {}

func (l *limiter) get(t *keyspace.Tenant) *tenantLimit {
	if v, ok := l.tenants.Load(t.ID); ok {
		return v.(*tenantLimit)
	}
	v, _ := l.tenants.LoadOrStore(t.ID, &tenantLimit{})
	return v.(*tenantLimit)
}

// bucketFor returns the token bucket for the tenant's current limits,
// adjusting it when an operator changed them.
func (tl *tenantLimit) bucketFor(lim keyspace.Limits) *rate.Limiter {
	tl.maxConc.Store(int64(lim.MaxConcurrent))
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if lim.OpsPerSec == 0 {
		tl.bucket, tl.ops = nil, 0
		return nil
	}
	burst := effectiveBurst(lim)
	if tl.bucket == nil {
		tl.bucket = rate.NewLimiter(rate.Limit(lim.OpsPerSec), int(min(burst, 1<<30)))
	} else if tl.ops != lim.OpsPerSec || tl.burst != burst {
		tl.bucket.SetLimit(rate.Limit(lim.OpsPerSec))
		tl.bucket.SetBurst(int(min(burst, 1<<30)))
	}
	tl.ops, tl.burst = lim.OpsPerSec, burst
	return tl.bucket
}

// effectiveBurst is the bucket size of a rate limit: as configured, or a
// tenth of a second's worth.
func effectiveBurst(lim keyspace.Limits) uint64 {
	if lim.Burst != 0 {
		return lim.Burst
	}
	return max(lim.OpsPerSec/10, 1)
}

// forget drops the state of a deleted tenant.
func (l *limiter) forget(id keyspace.TenantID) { l.tenants.Delete(id) }
