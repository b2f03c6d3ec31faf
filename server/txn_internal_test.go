package server

import (
	"fmt"
	"testing"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/raft/fsm"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/keyspace"
)

func TestTxnErrorCodes(t *testing.T) {
	s := &Server{}
	for err, code := range map[error]wire.Code{
		fsm.ErrConflict:       wire.CodeConflict,
		fsm.ErrTxTooOld:       wire.CodeTxTooOld,
		command.ErrTxTooLarge: wire.CodeTxTooLarge,
		fsm.ErrWatchTooOld:    wire.CodeWatchTooOld,
		ErrRateLimited:        wire.CodeRateLimited,
	} {
		if got := s.txnErrorResponse(fmt.Errorf("wrapped: %w", err)).Code; got != code {
			t.Errorf("%v: code %v, want %v", err, got, code)
		}
	}
}

func TestWatchHub(t *testing.T) {
	var h watchHub
	rel1, ok := h.acquire(1, 2)
	if !ok {
		t.Fatal("first watch refused")
	}
	rel2, ok := h.acquire(1, 2)
	if !ok {
		t.Fatal("second watch refused")
	}
	if _, ok := h.acquire(1, 2); ok {
		t.Fatal("third watch admitted over a limit of 2")
	}
	if rel, ok := h.acquire(2, 2); !ok {
		t.Fatal("another tenant's watch refused")
	} else {
		rel()
	}
	ch := h.changed(1)
	h.notify([]keyspace.TenantID{2})
	select {
	case <-ch:
		t.Fatal("woken by another tenant's change")
	default:
	}
	h.notify([]keyspace.TenantID{1})
	<-ch
	ch = h.changed(1)
	h.notify(nil) // a snapshot restore wakes everyone
	<-ch
	rel1()
	rel2()
	if len(h.tenants) != 0 {
		t.Fatalf("%d tenants left after every watch ended", len(h.tenants))
	}
}
