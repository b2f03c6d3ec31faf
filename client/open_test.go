package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestOpenWaitsForNotReadyNode: a node that is up but answers that it
// cannot authenticate yet (it restarted and knows no leader) is asked
// again until it is ready, instead of Open failing at once.
func TestOpenWaitsForNotReadyNode(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	srv.set(func(s *fakeServer) { s.helloRefusals = 4 })
	db, err := Open(ctxTimeout(t, 30*time.Second), []string{deadAddr(t), srv.addr}, &Options{Token: acmeToken})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	if n := srv.helloCount(); n != 5 {
		t.Errorf("%d hellos, want 4 refused and 1 accepted", n)
	}
	if err := db.Tenant("acme").Set(t.Context(), []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
}

// TestOpenNotReadyUntilDeadline: a node that never gets ready is asked
// until the caller's context ends, and the error says why.
func TestOpenNotReadyUntilDeadline(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	srv.set(func(s *fakeServer) { s.helloRefusals = 1 << 30 })
	// Long enough for two hellos on a loaded machine.
	_, err := Open(ctxTimeout(t, 2*time.Second), []string{srv.addr}, &Options{Token: acmeToken})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not ready to authenticate") {
		t.Fatalf("Open: %v, want the deadline with the node's answer", err)
	}
	if n := srv.helloCount(); n < 2 {
		t.Errorf("%d hellos: the node was not asked again", n)
	}
}

// TestOpenUnreachableFailsAtOnce: endpoints where nothing listens are not
// waited for: Open fails without waiting for its context.
func TestOpenUnreachableFailsAtOnce(t *testing.T) {
	checkGoroutines(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, err := Open(ctx, []string{deadAddr(t), deadAddr(t)}, &Options{Token: acmeToken})
	if !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
		t.Fatalf("Open: %v, want ErrUnavailable before the context ends", err)
	}
}
