package client

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// A pacer made by a refusal is never dropped as idle by a wait running at
// the same moment.
func TestNewPacerSurvivesConcurrentWait(t *testing.T) {
	for i := range 500 {
		var ps pacers
		tenant := fmt.Sprint("t", i)
		var stop atomic.Bool
		started, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			close(started)
			for !stop.Load() {
				_ = ps.wait(context.Background(), nil, tenant)
			}
		}()
		<-started
		ps.refused(tenant, &wire.Response{RateLimit: 1000000, RateBurst: 1000000})
		stop.Store(true)
		<-done
		if _, ok := ps.m.Load(tenant); !ok {
			t.Fatalf("round %d: the pacer was dropped before its refusal was recorded", i)
		}
	}
}

// Waits are bounded: behind many reservations a request is refused at once
// (as rate limited, nothing sent) rather than queued for seconds, and a
// deadline too close to fit is refused the same way.
func TestPacerWaitsAreBounded(t *testing.T) {
	var ps pacers
	ps.refused("acme", &wire.Response{RateLimit: 2, RateBurst: 1})
	start := time.Now()
	var refused atomic.Int64
	errs := make(chan error, 8)
	for range 8 { // queued at once: the later reservations lie past maxPaceWait
		go func() {
			err := ps.wait(context.Background(), nil, "acme")
			var e *Error
			if errors.As(err, &e) && errors.Is(err, ErrRateLimited) {
				refused.Add(1)
				if e.RetryAfter <= 0 {
					err = fmt.Errorf("refusal without a retry hint: %v", err)
				} else {
					err = nil
				}
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took > maxPaceWait+500*time.Millisecond {
		t.Errorf("8 concurrent paced waits at 2/s took %v", took)
	}
	if refused.Load() == 0 {
		t.Error("no wait was refused although the queue ran past maxPaceWait")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := ps.wait(ctx, nil, "acme"); !errors.Is(err, ErrRateLimited) {
		t.Errorf("a wait that cannot fit its deadline: %v, want ErrRateLimited", err)
	}
	closed := make(chan struct{})
	close(closed)
	ps.refused("slow", &wire.Response{RateLimit: 1, RateBurst: 1})
	if err := ps.wait(context.Background(), closed, "slow"); !errors.Is(err, ErrClosed) && !errors.Is(err, ErrRateLimited) {
		t.Errorf("a wait on a closed DB: %v", err)
	}
}
