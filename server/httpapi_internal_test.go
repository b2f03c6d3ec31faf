package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// TestHTTPCodeTable: every wire code has its HTTP status and JSON code;
// commit_unknown's status is its own, so that a client reading only
// statuses cannot take an unknown outcome for a failure; 429 and 503 are
// the statuses that carry Retry-After.
func TestHTTPCodeTable(t *testing.T) {
	for c := wire.Code(0); c < 256; c++ {
		if strings.HasPrefix(c.String(), "code(") {
			continue // not a code of the protocol
		}
		hc, ok := httpCodes[c]
		if !ok {
			t.Errorf("wire code %d (%s) has no HTTP status", c, c)
			continue
		}
		if hc.name == "" || hc.status < 200 || hc.status > 599 {
			t.Errorf("wire code %s: %+v", c, hc)
		}
		if c != wire.CodeCommitUnknown && hc.status == httpCodes[wire.CodeCommitUnknown].status {
			t.Errorf("wire code %s shares commit_unknown's status %d", c, hc.status)
		}
	}
	if got := httpCodeOf(wire.Code(999)); got.status != http.StatusInternalServerError {
		t.Errorf("an unknown code: %+v", got)
	}
	for _, c := range []struct {
		code   wire.Code
		status int
	}{{wire.CodeNotFound, 404}, {wire.CodePermissionDenied, 403}, {wire.CodeConflict, 409}, {wire.CodeValueTooLarge, 413},
		{wire.CodeRateLimited, 429}, {wire.CodeUnavailable, 503}, {wire.CodeCommitUnknown, 504}, {wire.CodeWatchTooOld, 410}} {
		if got := httpCodes[c.code].status; got != c.status {
			t.Errorf("%s: status %d, the issue says %d", c.code, got, c.status)
		}
	}
	for _, c := range []wire.Code{wire.CodeRateLimited, wire.CodeUnavailable, wire.CodeCommitUnknown} {
		rec := &headerRecorder{h: http.Header{}}
		writeWireError(rec, &wire.Response{Code: c, Msg: "m"})
		want := c != wire.CodeCommitUnknown
		if got := rec.h.Get("Retry-After") != ""; got != want {
			t.Errorf("%s: Retry-After present %v, want %v", c, got, want)
		}
		if rec.status != httpCodes[c].status {
			t.Errorf("%s: status %d", c, rec.status)
		}
	}
}

type headerRecorder struct {
	h      http.Header
	status int
}

func (r *headerRecorder) Header() http.Header         { return r.h }
func (r *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *headerRecorder) WriteHeader(s int)           { r.status = s }
