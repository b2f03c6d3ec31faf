package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

func TestServerErrors(t *testing.T) {
	checkGoroutines(t)
	srv := newFakeServer(t)
	var mu sync.Mutex
	var reply *wire.Response
	srv.set(func(s *fakeServer) {
		s.hook = func(req *wire.Request) fakeAction {
			mu.Lock()
			defer mu.Unlock()
			return fakeAction{reply: reply}
		}
	})
	db := open(t, acmeToken, srv.addr)
	acme := db.Tenant("acme")
	for _, tc := range []struct {
		resp wire.Response
		want error
		text string
	}{
		{wire.Response{Code: wire.CodeRateLimited, Msg: "slow down", RetryAfter: 3 * time.Second}, ErrRateLimited, "tenantkv: rate limited: slow down"},
		{wire.Response{Code: wire.CodeTenantNotFound, Msg: "tenantkv: tenant not found: acme"}, ErrTenantNotFound, "tenantkv: tenant not found: acme"},
		{wire.Response{Code: wire.CodeTenantReadOnly}, ErrTenantReadOnly, "tenantkv: tenant is read-only"},
		{wire.Response{Code: wire.CodeCommitUnknown, Msg: "leadership lost"}, ErrCommitUnknown, "tenantkv: commit result unknown: leadership lost"},
		{wire.Response{Code: wire.CodeInternal, Msg: "internal error"}, ErrInternal, "tenantkv: internal error"},
		{wire.Response{Code: wire.CodeQuotaExceeded, Msg: "two\nlines"}, ErrQuotaExceeded, "tenantkv: quota exceeded: two lines"},
		{wire.Response{Code: 99, Msg: "from the future"}, nil, "tenantkv: code(99): from the future"},
	} {
		mu.Lock()
		reply = &tc.resp
		mu.Unlock()
		err := acme.Set(t.Context(), []byte("k"), []byte("v"))
		var se *Error
		if !errors.As(err, &se) {
			t.Fatalf("%v: %v is not an *Error", tc.resp.Code, err)
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%v: %v does not match %v", tc.resp.Code, err, tc.want)
		}
		if err.Error() != tc.text {
			t.Errorf("%v: text %q, want %q", tc.resp.Code, err.Error(), tc.text)
		}
		if se.RetryAfter != tc.resp.RetryAfter || se.Code != Code(tc.resp.Code) {
			t.Errorf("%v: got %+v", tc.resp.Code, se)
		}
	}
	if n := srv.count(wire.OpSet); n != 7 {
		t.Errorf("%d sets, want 7 (errors are not retried)", n)
	}
}

func TestErrorTable(t *testing.T) {
	sentinels := []error{ErrNotFound, ErrTenantNotFound, ErrTenantExists, ErrPermissionDenied, ErrInvalidKey,
		ErrKeyTooLarge, ErrValueTooLarge, ErrCommitUnknown, ErrClosed, ErrInvalidRange, ErrInvalidName,
		ErrInvalidArgument, ErrNotLeader, ErrUnavailable, ErrTenantReadOnly, ErrTenantLocked, ErrQuotaExceeded,
		ErrRateLimited, ErrTokenNotFound, ErrConflict, ErrTxTooOld, ErrTxTooLarge, ErrInternal, ErrBadRequest,
		context.DeadlineExceeded}
	for c := wire.Code(1); c <= wire.CodeInvalidArgument; c++ {
		err := error(&Error{Code: Code(c)})
		var matched []error
		for _, s := range sentinels {
			if errors.Is(err, s) {
				matched = append(matched, s)
			}
		}
		if len(matched) != 1 {
			t.Errorf("code %d (%v) matches %v, want exactly one sentinel", c, c, matched)
		}
		if !errors.Is(fmt.Errorf("wrapped: %w", err), matched[0]) {
			t.Errorf("code %d: wrapped error does not match", c)
		}
		if s := err.Error(); !strings.HasPrefix(s, "tenantkv: ") || strings.Contains(s, "\n") {
			t.Errorf("code %d: text %q", c, s)
		}
	}
	if errors.Is(&Error{Code: 0}, ErrInternal) {
		t.Error("code 0 matches a sentinel")
	}
	for want, codes := range map[error][]wire.Code{
		ErrNotFound:         {wire.CodeNotFound},
		ErrPermissionDenied: {wire.CodeUnauthenticated, wire.CodePermissionDenied},
		ErrCommitUnknown:    {wire.CodeCommitUnknown},
		ErrTenantNotFound:   {wire.CodeTenantNotFound},
	} {
		for _, c := range codes {
			if !errors.Is(&Error{Code: Code(c)}, want) {
				t.Errorf("code %v does not match %v", c, want)
			}
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	var nilOpts *Options
	for _, tc := range []struct {
		o  *Options
		ok bool
	}{
		{nilOpts, true},
		{&Options{}, true},
		{&Options{DialTimeout: time.Second, MaxFrame: 1 << 20}, true},
		{&Options{DialTimeout: -1}, false},
		{&Options{MaxFrame: -1}, false},
		{&Options{MaxFrame: 10}, false},
	} {
		err := tc.o.Validate()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidArgument)) {
			t.Errorf("Validate(%+v) = %v", tc.o, err)
		}
	}
	d := nilOpts.withDefaults()
	if d.DialTimeout != DefaultDialTimeout || d.MaxFrame != wire.DefaultMaxFrame || d.Logger == nil {
		t.Errorf("defaults %+v", d)
	}
}
