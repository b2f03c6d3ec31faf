package server

import (
	"context"
	"sync"
)

// byteBudget is a semaphore of bytes: requests take bytes before they
// decode or run, and give them back once their answers are written. Waiters
// are served in order, so a large request is not starved by small ones.
// A request larger than the whole budget takes all of it, alone.
//
// A waiter may already hold bytes (a reader holds its frame's while it
// waits for what decoding and answering it will take). When every byte
// taken is held by waiters, nothing would ever be released: the first
// waiter is then served even past the limit, so the budget can be exceeded
// by at most one waiter's request, and never deadlocks.
//
// It is safe for concurrent use.
type byteBudget struct {
	mu      sync.Mutex
	limit   int64
	used    int64
	held    int64 // of used, what waiters hold while they wait
	waiters []*budgetWaiter
}

type budgetWaiter struct {
	n, held int64
	ready   chan struct{} // closed when the bytes were granted
}

func newByteBudget(limit int64) *byteBudget { return &byteBudget{limit: limit} }

// acquire takes n bytes (at most the whole budget), waiting until they are
// free or ctx ends; held is what the caller already holds of this budget
// while it waits. It returns what it took, which the caller releases.
func (b *byteBudget) acquire(ctx context.Context, n, held int64) (int64, error) {
	n = min(max(n, 0), b.limit)
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.limit {
		b.used += n
		b.mu.Unlock()
		return n, nil
	}
	w := &budgetWaiter{n: n, held: held, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.held += held
	b.grantLocked() // everything taken may be held by waiters now
	b.mu.Unlock()
	select {
	case <-w.ready:
		return n, nil
	case <-ctx.Done():
		b.mu.Lock()
		select {
		case <-w.ready:
			// Granted while giving up: give it back.
			b.used -= n
		default:
			for i, x := range b.waiters {
				if x == w {
					b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
					b.held -= w.held
					break
				}
			}
		}
		b.grantLocked()
		b.mu.Unlock()
		return 0, ctx.Err()
	}
}

// force takes n bytes without waiting, even past the limit: for answers
// larger than what their request reserved, which exist already.
func (b *byteBudget) force(n int64) {
	b.mu.Lock()
	b.used += n
	b.mu.Unlock()
}

// release gives back n bytes and wakes the waiters that now fit.
func (b *byteBudget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.grantLocked()
	b.mu.Unlock()
}

func (b *byteBudget) grantLocked() {
	for len(b.waiters) > 0 {
		w := b.waiters[0]
		if b.used+w.n > b.limit && b.used > b.held {
			return
		}
		b.used += w.n
		b.held -= w.held
		b.waiters = b.waiters[1:]
		close(w.ready)
	}
}

// inUse returns the bytes taken.
func (b *byteBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
