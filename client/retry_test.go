package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

func TestLeaderRedirect(t *testing.T) {
	checkGoroutines(t)
	leader := newFakeServer(t)
	follower := newFakeServer(t)
	follower.set(func(s *fakeServer) { s.redirectCode, s.redirectLeader = wire.CodeNotLeader, leader.addr })
	db := open(t, opToken, follower.addr) // the leader is not an endpoint
	ctx := t.Context()
	acme := db.Tenant("acme")
	if err := acme.Set(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if got := leader.count(wire.OpSet); got != 1 {
		t.Fatalf("leader got %d sets, want 1", got)
	}
	if got := follower.count(wire.OpSet); got != 1 {
		t.Fatalf("follower got %d sets, want 1 (then redirect)", got)
	}
	// Later requests go straight to the leader.
	if v, err := acme.Get(ctx, []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if _, err := db.CreateTenant(ctx, "beta", nil); err != nil {
		t.Fatal(err)
	}
	if n := follower.count(wire.OpGet) + follower.count(wire.OpCreateTenant); n != 0 {
		t.Errorf("follower got %d requests after the redirect", n)
	}

	// The leader steps down and points back at the follower, which has
	// become the leader.
	leader.set(func(s *fakeServer) { s.redirectCode, s.redirectLeader = wire.CodeNotLeader, follower.addr })
	follower.set(func(s *fakeServer) { s.redirectCode = wire.CodeOK })
	if err := acme.Set(ctx, []byte("k2"), []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if got := follower.count(wire.OpSet); got != 2 {
		t.Fatalf("new leader got %d sets, want 2", got)
	}
}

func TestRedirectLoopBacksOff(t *testing.T) {
	checkGoroutines(t)
	a := newFakeServer(t)
	b := newFakeServer(t)
	a.set(func(s *fakeServer) { s.redirectCode, s.redirectLeader = wire.CodeNotLeader, b.addr })
	b.set(func(s *fakeServer) { s.redirectCode, s.redirectLeader = wire.CodeNotLeader, a.addr })
	db := open(t, acmeToken, a.addr)
	err := db.Tenant("acme").Set(ctxTimeout(t, 300*time.Millisecond), []byte("k"), []byte("v"))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not leader") {
		t.Fatalf("Set: %v, want a deadline naming the last error", err)
	}
	// With backoff (20ms doubling) a 300ms deadline allows a handful of
	// attempts; spinning would make thousands.
	if n := a.count(wire.OpSet) + b.count(wire.OpSet); n > 50 {
		t.Errorf("%d attempts in 300ms: no backoff", n)
	}
}

func TestNoLeaderRetry(t *testing.T) {
	checkGoroutines(t)
	t.Run("same node recovers", func(t *testing.T) {
		srv := newFakeServer(t)
		var mu sync.Mutex
		left := 3
		srv.set(func(s *fakeServer) {
			s.hook = func(req *wire.Request) fakeAction {
				mu.Lock()
				defer mu.Unlock()
				if left > 0 {
					left--
					if left%2 == 0 {
						return fakeAction{reply: &wire.Response{Code: wire.CodeUnavailable, Msg: "no leader known"}}
					}
					return fakeAction{reply: &wire.Response{Code: wire.CodeNotLeader}}
				}
				return fakeAction{}
			}
		})
		db := open(t, acmeToken, srv.addr)
		if err := db.Tenant("acme").Set(ctxTimeout(t, 10*time.Second), []byte("k"), []byte("v")); err != nil {
			t.Fatal(err)
		}
		if n := srv.count(wire.OpSet); n != 4 {
			t.Errorf("%d attempts, want 4", n)
		}
	})
	t.Run("another endpoint", func(t *testing.T) {
		a := newFakeServer(t)
		b := newFakeServer(t)
		a.set(func(s *fakeServer) { s.redirectCode = wire.CodeUnavailable })
		db := open(t, acmeToken, a.addr, b.addr)
		if err := db.Tenant("acme").Set(ctxTimeout(t, 10*time.Second), []byte("k"), []byte("v")); err != nil {
			t.Fatal(err)
		}
		if a.count(wire.OpSet) != 1 || b.count(wire.OpSet) != 1 {
			t.Errorf("sets: a %d, b %d; want 1 and 1", a.count(wire.OpSet), b.count(wire.OpSet))
		}
	})
	t.Run("leader unreachable", func(t *testing.T) {
		// The follower points at a leader that cannot be dialled; the
		// client forgets it and comes back to the endpoints.
		a := newFakeServer(t)
		dead := deadAddr(t)
		var mu sync.Mutex
		redirects := 2
		a.set(func(s *fakeServer) {
			s.hook = func(req *wire.Request) fakeAction {
				mu.Lock()
				defer mu.Unlock()
				if redirects > 0 {
					redirects--
					return fakeAction{reply: &wire.Response{Code: wire.CodeNotLeader, Leader: dead}}
				}
				return fakeAction{}
			}
		})
		db := open(t, acmeToken, a.addr)
		if err := db.Tenant("acme").Set(ctxTimeout(t, 10*time.Second), []byte("k"), []byte("v")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("never", func(t *testing.T) {
		a := newFakeServer(t)
		a.set(func(s *fakeServer) { s.redirectCode = wire.CodeUnavailable })
		db := open(t, acmeToken, a.addr)
		_, err := db.Tenant("acme").Get(ctxTimeout(t, 200*time.Millisecond), []byte("k"))
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "unavailable") {
			t.Fatalf("Get: %v", err)
		}
	})
}

func TestWriteDroppedAfterSend(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	srv.set(func(s *fakeServer) {
		s.hook = func(req *wire.Request) fakeAction { return fakeAction{drop: req.Op != wire.OpGet} }
	})
	db := open(t, opToken, srv.addr)
	ctx := ctxTimeout(t, 5*time.Second)
	for _, tc := range []struct {
		name string
		op   wire.Op
		call func() error
	}{
		{"set", wire.OpSet, func() error { return db.Tenant("acme").Set(ctx, []byte("k"), []byte("v")) }},
		{"delete", wire.OpDelete, func() error { return db.Tenant("acme").Delete(ctx, []byte("k")) }},
		{"delete-range", wire.OpDeleteRange, func() error { return db.Tenant("acme").DeleteRange(ctx, KeyRange{}) }},
		{"create-tenant", wire.OpCreateTenant, func() error { _, err := db.CreateTenant(ctx, "x", nil); return err }},
		{"new-token", wire.OpNewToken, func() error { _, err := db.NewTenantToken(ctx, "acme"); return err }},
	} {
		err := tc.call()
		if !errors.Is(err, ErrCommitUnknown) {
			t.Errorf("%s: %v, want ErrCommitUnknown", tc.name, err)
		}
		if n := srv.count(tc.op); n != 1 {
			t.Errorf("%s sent %d times, want once (no retry)", tc.name, n)
		}
	}
}

func TestReadRetriedAfterDrop(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	var mu sync.Mutex
	dropped := map[wire.Op]bool{}
	srv.set(func(s *fakeServer) {
		s.hook = func(req *wire.Request) fakeAction {
			mu.Lock()
			defer mu.Unlock()
			if req.Op == wire.OpSet || dropped[req.Op] {
				return fakeAction{}
			}
			dropped[req.Op] = true
			return fakeAction{drop: true}
		}
	})
	db := open(t, opToken, srv.addr)
	ctx := t.Context()
	acme := db.Tenant("acme")
	if err := acme.Set(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if v, err := acme.Get(ctx, []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if got := collect(t, acme.Range(ctx, KeyRange{}, nil)); len(got) != 1 {
		t.Fatalf("Range = %v", got)
	}
	if _, err := db.TenantInfo(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ListTenants(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ClusterStatus(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	for _, op := range []wire.Op{wire.OpGet, wire.OpScan, wire.OpGetTenant, wire.OpListTenants, wire.OpClusterStatus, wire.OpPing} {
		if n := srv.count(op); n != 2 {
			t.Errorf("%s sent %d times, want 2", op, n)
		}
	}
	if n := srv.helloCount(); n != 7 {
		t.Errorf("%d hellos, want 7 (one per drop, plus the first)", n)
	}
}

// TestRedialAfterBrokenConnection checks that a connection the server closed
// while idle is replaced on next use, and that a write which never went out
// on it is sent (once) on the new one.
func TestRedialAfterBrokenConnection(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	db := open(t, acmeToken, srv.addr)
	ctx := t.Context()
	acme := db.Tenant("acme")
	if err := acme.Set(ctx, []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	srv.dropConns()
	waitFor(t, "the client to notice", func() bool {
		db.mu.Lock()
		defer db.mu.Unlock()
		c := db.conns[srv.addr]
		return c != nil && !c.alive()
	})
	if err := acme.Set(ctx, []byte("b"), []byte("2")); err != nil {
		t.Fatalf("Set after the connection broke: %v", err)
	}
	if n := srv.count(wire.OpSet); n != 2 {
		t.Errorf("%d sets, want 2", n)
	}
	if n := srv.helloCount(); n != 2 {
		t.Errorf("%d hellos, want 2", n)
	}
}

func TestContextEnds(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	release := make(chan struct{})
	srv.set(func(s *fakeServer) {
		s.hook = func(req *wire.Request) fakeAction {
			if string(req.Key) == "slow" {
				<-release
			}
			return fakeAction{}
		}
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	db := open(t, acmeToken, srv.addr)
	acme := db.Tenant("acme")

	_, err := acme.Get(ctxTimeout(t, 50*time.Millisecond), []byte("slow"))
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrCommitUnknown) {
		t.Fatalf("Get: %v, want only context.DeadlineExceeded", err)
	}
	err = acme.Set(ctxTimeout(t, 50*time.Millisecond), []byte("slow"), []byte("v"))
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrCommitUnknown) {
		t.Fatalf("Set: %v, want context.DeadlineExceeded and ErrCommitUnknown", err)
	}
	cctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := acme.Set(cctx, []byte("k"), []byte("v")); !errors.Is(err, context.Canceled) || errors.Is(err, ErrCommitUnknown) {
		t.Fatalf("Set with a cancelled context: %v, want context.Canceled only", err)
	}
	if n := srv.count(wire.OpSet); n != 1 {
		t.Fatalf("%d sets reached the server, want 1", n)
	}

	// The late answers are dropped; the connection goes on.
	close(release)
	for i := range 20 {
		k := fmt.Appendf(nil, "k%d", i)
		if err := acme.Set(t.Context(), k, k); err != nil {
			t.Fatal(err)
		}
		if v, err := acme.Get(t.Context(), k); err != nil || !bytes.Equal(v, k) {
			t.Fatalf("Get = %q, %v", v, err)
		}
	}
	db.mu.Lock()
	c := db.conns[srv.addr]
	db.mu.Unlock()
	waitFor(t, "no calls pending", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.pending) == 0
	})
	if n := srv.helloCount(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

func TestClose(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv.set(func(s *fakeServer) {
		s.hook = func(req *wire.Request) fakeAction {
			if string(req.Key) == "slow" {
				<-release
			}
			return fakeAction{}
		}
	})
	db, err := Open(t.Context(), []string{srv.addr}, &Options{Token: opToken})
	if err != nil {
		t.Fatal(err)
	}
	acme := db.Tenant("acme")
	var wg sync.WaitGroup
	var getErr, setErr error
	wg.Go(func() { _, getErr = acme.Get(t.Context(), []byte("slow")) })
	wg.Go(func() { setErr = acme.Set(t.Context(), []byte("slow"), []byte("v")) })
	waitFor(t, "both calls to reach the server", func() bool {
		return srv.count(wire.OpGet) == 1 && srv.count(wire.OpSet) == 1
	})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !errors.Is(getErr, ErrClosed) {
		t.Errorf("Get in flight: %v, want ErrClosed", getErr)
	}
	if !errors.Is(setErr, ErrClosed) || !errors.Is(setErr, ErrCommitUnknown) {
		t.Errorf("Set in flight: %v, want ErrClosed and ErrCommitUnknown", setErr)
	}

	ctx := t.Context()
	if _, err := acme.Get(ctx, []byte("k")); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if err := acme.Set(ctx, []byte("k"), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Set after Close: %v", err)
	}
	if err := rangeErr(acme.Range(ctx, KeyRange{}, nil)); !errors.Is(err, ErrClosed) {
		t.Errorf("Range after Close: %v", err)
	}
	if _, err := db.ListTenants(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("ListTenants after Close: %v", err)
	}
	if err := db.Ping(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Ping after Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestCloseWhileRetrying checks that Close ends calls waiting for a leader.
func TestCloseWhileRetrying(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	srv.set(func(s *fakeServer) { s.redirectCode = wire.CodeUnavailable })
	db, err := Open(t.Context(), []string{srv.addr}, &Options{Token: acmeToken})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- db.Tenant("acme").Set(t.Context(), []byte("k"), []byte("v")) }()
	waitFor(t, "a few retries", func() bool { return srv.count(wire.OpSet) >= 3 })
	db.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Set: %v, want ErrClosed", err)
	}
}

func TestStaleReads(t *testing.T) {
	checkGoroutines(t)
	leader := newFakeServer(t)
	follower := newFakeServer(t)
	follower.set(func(s *fakeServer) {
		s.redirectCode, s.redirectLeader = wire.CodeNotLeader, leader.addr
		s.data["acme"]["k"] = []byte("old")
	})
	leader.set(func(s *fakeServer) { s.data["acme"]["k"] = []byte("new") })
	db := open(t, acmeToken, follower.addr)
	ctx := t.Context()
	acme := db.Tenant("acme")
	stale := acme.WithStaleReads()
	if stale.Name() != "acme" {
		t.Fatal(stale.Name())
	}
	if v, err := stale.Get(ctx, []byte("k")); err != nil || string(v) != "old" {
		t.Fatalf("stale Get = %q, %v; want the follower's value", v, err)
	}
	if got := collect(t, acme.Range(ctx, KeyRange{}, &RangeOptions{Stale: true})); !slices.Equal(got, []string{"k=old"}) {
		t.Fatalf("stale Range = %v", got)
	}
	if got := collect(t, stale.Range(ctx, KeyRange{}, nil)); !slices.Equal(got, []string{"k=old"}) {
		t.Fatalf("Range on a stale handle = %v", got)
	}
	if v, err := acme.Get(ctx, []byte("k")); err != nil || string(v) != "new" {
		t.Fatalf("Get = %q, %v; want the leader's value", v, err)
	}
	if r := follower.requests(wire.OpGet); len(r) != 2 || !r[0].Stale || r[1].Stale {
		t.Errorf("follower's gets: %+v", r)
	}
	// Writes through a stale handle still go to the leader.
	if err := stale.Set(ctx, []byte("k2"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if leader.count(wire.OpSet) != 1 {
		t.Error("a write through a stale handle did not reach the leader")
	}
}

// TestNoGoroutineLeak opens, uses (with redirects and broken connections)
// and closes DBs, and checks every goroutine ends.
func TestNoGoroutineLeak(t *testing.T) {
	checkGoroutines(t)
	leader := newFakeServer(t)
	follower := newFakeServer(t)
	follower.set(func(s *fakeServer) { s.redirectCode, s.redirectLeader = wire.CodeNotLeader, leader.addr })
	for range 3 {
		db, err := Open(t.Context(), []string{deadAddr(t), follower.addr}, &Options{Token: acmeToken})
		if err != nil {
			t.Fatal(err)
		}
		acme := db.Tenant("acme")
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				k := fmt.Appendf(nil, "k%d", i)
				if err := acme.Set(t.Context(), k, k); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		leader.dropConns()
		if _, err := acme.Get(t.Context(), []byte("k1")); err != nil {
			t.Error(err)
		}
		db.Close()
	}
}
