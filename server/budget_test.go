package server

import (
	"context"
	"testing"
	"time"
)

// TestByteBudgetNoHoldAndWaitDeadlock: two readers each hold part of the
// budget and wait for more than is left. Nothing else would release bytes,
// so the first is served past the limit instead of both waiting for ever.
func TestByteBudgetNoHoldAndWaitDeadlock(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	b := newByteBudget(100)
	a1, _ := b.acquire(ctx, 40, 0)
	b1, _ := b.acquire(ctx, 40, 0)
	done := make(chan int64, 2)
	go func() { n, _ := b.acquire(ctx, 50, a1); done <- n }()
	go func() { n, _ := b.acquire(ctx, 50, b1); done <- n }()
	first := <-done
	if first != 50 || ctx.Err() != nil {
		t.Fatalf("first waiter got %d (%v)", first, ctx.Err())
	}
	b.release(first + a1) // the first request is done
	if n := <-done; n != 50 || ctx.Err() != nil {
		t.Fatalf("second waiter got %d (%v)", n, ctx.Err())
	}
	b.release(50 + b1)
	if u := b.inUse(); u != 0 {
		t.Fatalf("%d bytes still in use", u)
	}
	// A waiter that gives up leaves nothing behind.
	x, _ := b.acquire(ctx, 100, 0)
	cctx, ccancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer ccancel()
	if _, err := b.acquire(cctx, 10, 0); err == nil {
		t.Fatal("acquired past the limit while the holder was not waiting")
	}
	b.release(x)
	if u := b.inUse(); u != 0 {
		t.Fatalf("%d bytes in use after a cancelled wait", u)
	}
}
