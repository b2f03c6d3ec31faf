package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// checkGoroutines fails the test if, once every later cleanup has run (the
// fake servers and DBs the test opens), more goroutines remain than before.
// Register it first.
func checkGoroutines(t *testing.T) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= base {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Fatalf("goroutines: %d before, %d after\n%s", base, n, buf)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func open(t *testing.T, token string, addrs ...string) *DB {
	t.Helper()
	db, err := Open(t.Context(), addrs, &Options{Token: token, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// deadAddr returns an address on which nothing listens.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestOpenIdentity(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	for _, tc := range []struct {
		token    string
		tenant   string
		operator bool
	}{{opToken, "", true}, {acmeToken, "acme", false}} {
		db := open(t, tc.token, srv.addr)
		tenant, op := db.Identity()
		if tenant != tc.tenant || op != tc.operator {
			t.Errorf("Identity with %s = %q, %v; want %q, %v", tc.token, tenant, op, tc.tenant, tc.operator)
		}
		if err := db.Ping(t.Context()); err != nil {
			t.Errorf("Ping: %v", err)
		}
	}
}

func TestOpenBadToken(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	db, err := Open(ctxTimeout(t, 10*time.Second), []string{srv.addr}, &Options{Token: "wrong"})
	if err == nil {
		db.Close()
		t.Fatal("Open with a bad token succeeded")
	}
	if !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("Open: %v, want ErrPermissionDenied", err)
	}
	var se *Error
	if !errors.As(err, &se) || se.Code != Code(wire.CodePermissionDenied) {
		t.Fatalf("Open: %#v, want *Error with code 5", err)
	}
	if got := err.Error(); got != "tenantkv: permission denied: invalid token" {
		t.Errorf("error text %q", got)
	}
}

func TestOpenFailures(t *testing.T) {
	checkGoroutines(t)
	// A listener that accepts and never answers the hello.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mute.Close()
		<-done
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	// A listener that closes every connection at once.
	rude, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rudeDone := make(chan struct{})
	go func() {
		defer close(rudeDone)
		for {
			c, err := rude.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { rude.Close(); <-rudeDone })

	for _, tc := range []struct {
		name string
		eps  []string
		opts *Options
		want error
	}{
		{"no endpoints", nil, nil, ErrInvalidArgument},
		{"bad options", []string{"x:1"}, &Options{DialTimeout: -1}, ErrInvalidArgument},
		{"refused", []string{deadAddr(t)}, nil, ErrUnavailable},
		{"silent hello", []string{mute.Addr().String()}, &Options{DialTimeout: 100 * time.Millisecond}, ErrUnavailable},
		{"closed at once", []string{rude.Addr().String()}, nil, ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := Open(ctxTimeout(t, 10*time.Second), tc.eps, tc.opts)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open: %v, want %v", err, tc.want)
			}
		})
	}

	t.Run("caller deadline", func(t *testing.T) {
		ctx := ctxTimeout(t, 100*time.Millisecond)
		_, err := Open(ctx, []string{mute.Addr().String()}, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Open: %v, want context.DeadlineExceeded", err)
		}
	})
}

func TestOpenSkipsDeadEndpoint(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	db := open(t, acmeToken, deadAddr(t), srv.addr)
	if err := db.Tenant("acme").Set(t.Context(), []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
}

func TestGetSetDelete(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	db := open(t, acmeToken, srv.addr)
	ctx := t.Context()
	acme := db.Tenant("acme")
	if acme.Name() != "acme" {
		t.Fatalf("Name() = %q", acme.Name())
	}
	if own := db.Tenant(""); own.Name() != "acme" {
		t.Fatalf(`Tenant("").Name() = %q with a tenant token`, own.Name())
	}

	if _, err := acme.Get(ctx, []byte("k")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: %v, want ErrNotFound", err)
	} else if err.Error() != "tenantkv: not found" {
		t.Errorf("not found text %q", err.Error())
	}
	if err := acme.Set(ctx, []byte("k"), []byte("v1")); err != nil {
		t.Fatal(err)
	}
	v, err := acme.Get(ctx, []byte("k"))
	if err != nil || string(v) != "v1" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	v[0] = 'X' // the caller's to keep and change
	if v, _ := acme.Get(ctx, []byte("k")); string(v) != "v1" {
		t.Fatalf("Get after changing a returned slice = %q", v)
	}

	// An empty value is not a missing key.
	if err := acme.Set(ctx, []byte("empty"), nil); err != nil {
		t.Fatal(err)
	}
	v, err = acme.Get(ctx, []byte("empty"))
	if err != nil || v == nil || len(v) != 0 {
		t.Fatalf("Get empty value = %v (nil %v), %v", v, v == nil, err)
	}

	if err := acme.Delete(ctx, []byte("k")); err != nil {
		t.Fatal(err)
	}
	if _, err := acme.Get(ctx, []byte("k")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get deleted: %v", err)
	}
	if err := acme.Delete(ctx, []byte("k")); err != nil {
		t.Fatalf("Delete missing: %v", err)
	}

	// Another tenant is out of reach of a tenant token.
	if err := db.Tenant("other").Set(ctx, []byte("k"), []byte("v")); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("Set in another tenant: %v, want ErrPermissionDenied", err)
	}
}

func TestLocalChecks(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	db := open(t, acmeToken, srv.addr)
	ctx := t.Context()
	acme := db.Tenant("acme")
	big := bytes.Repeat([]byte("k"), MaxKeySize+1)
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"get empty key", func() error { _, err := acme.Get(ctx, nil); return err }(), ErrInvalidKey},
		{"set empty key", acme.Set(ctx, []byte{}, []byte("v")), ErrInvalidKey},
		{"delete empty key", acme.Delete(ctx, nil), ErrInvalidKey},
		{"get big key", func() error { _, err := acme.Get(ctx, big); return err }(), ErrKeyTooLarge},
		{"set big value", acme.Set(ctx, []byte("k"), make([]byte, MaxValueSize+1)), ErrValueTooLarge},
		{"delete-range inverted", acme.DeleteRange(ctx, KeyRange{Begin: []byte("b"), End: []byte("a")}), ErrInvalidRange},
		{"delete-range empty", acme.DeleteRange(ctx, KeyRange{Begin: []byte("a"), End: []byte("a")}), ErrInvalidRange},
		{"delete-range big bound", acme.DeleteRange(ctx, KeyRange{Begin: append(big, 'x')}), ErrKeyTooLarge},
		{"range inverted", rangeErr(acme.Range(ctx, KeyRange{Begin: []byte("b"), End: []byte("a")}, nil)), ErrInvalidRange},
		{"range negative limit", rangeErr(acme.Range(ctx, KeyRange{}, &RangeOptions{Limit: -1})), ErrInvalidArgument},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	srv.mu.Lock()
	n := len(srv.reqs)
	srv.mu.Unlock()
	if n != 0 {
		t.Errorf("invalid requests reached the server: %d", n)
	}
	// The largest key and value are accepted.
	if err := acme.Set(ctx, big[:MaxKeySize], make([]byte, MaxValueSize)); err != nil {
		t.Fatalf("Set of maximal key and value: %v", err)
	}
}

// TestConcurrentOutOfOrder runs many callers over one connection while the
// server answers in reversed batches.
func TestConcurrentOutOfOrder(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	srv.set(func(s *fakeServer) { s.reorder = true })
	db := open(t, acmeToken, srv.addr)
	ctx := t.Context()
	acme := db.Tenant("acme")
	const workers, ops = 16, 100
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range ops {
				k := fmt.Appendf(nil, "w%02d/%03d", w, i)
				v := fmt.Appendf(nil, "value %d %d", w, i)
				if err := acme.Set(ctx, k, v); err != nil {
					t.Errorf("Set: %v", err)
					return
				}
				got, err := acme.Get(ctx, k)
				if err != nil || !bytes.Equal(got, v) {
					t.Errorf("Get %s = %q, %v; want %q", k, got, err, v)
					return
				}
				if _, err := acme.Get(ctx, append(k, '!')); !errors.Is(err, ErrNotFound) {
					t.Errorf("Get missing: %v", err)
					return
				}
			}
			var n int
			for _, err := range acme.Range(ctx, Prefix(fmt.Appendf(nil, "w%02d/", w)), &RangeOptions{PageSize: 7}) {
				if err != nil {
					t.Errorf("Range: %v", err)
					return
				}
				n++
			}
			if n != ops {
				t.Errorf("worker %d: Range found %d keys, want %d", w, n, ops)
			}
		})
	}
	wg.Wait()
	srv.mu.Lock()
	inversions, hellos := srv.inversions, srv.hellos
	srv.mu.Unlock()
	if inversions == 0 {
		t.Error("the server never answered out of order; the test proves nothing")
	}
	if hellos != 1 {
		t.Errorf("%d connections, want 1", hellos)
	}
}
