package client

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// commitHook answers read-version requests and the commit attempts of a
// transaction from a script: answers[i] is what the i-th commit gets (nil
// drops the connection instead of answering).
func commitHook(answers []*wire.Response, commits *atomic.Int32) func(req *wire.Request) fakeAction {
	return func(req *wire.Request) fakeAction {
		switch req.Op {
		case wire.OpReadVersion:
			return fakeAction{reply: &wire.Response{DataVersion: 7, TenantID: 1}}
		case wire.OpCommit:
			i := int(commits.Add(1)) - 1
			if i >= len(answers) || answers[i] == nil {
				return fakeAction{drop: true}
			}
			resp := *answers[i]
			return fakeAction{reply: &resp}
		}
		return fakeAction{}
	}
}

func TestCommitResentWithTheSameID(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answers []*wire.Response
		want    error
		commits int32
	}{
		{"unknown then committed", []*wire.Response{{Code: wire.CodeCommitUnknown}, {DataVersion: 9}}, nil, 2},
		{"dropped then committed", []*wire.Response{nil, {DataVersion: 9}}, nil, 2},
		{"unknown then conflict", []*wire.Response{{Code: wire.CodeCommitUnknown}, {Code: wire.CodeConflict}}, ErrConflict, 0},
		{"unknown then too old", []*wire.Response{{Code: wire.CodeCommitUnknown}, {Code: wire.CodeTxTooOld}}, ErrCommitUnknown, 2},
		{"unknown then locked", []*wire.Response{{Code: wire.CodeCommitUnknown}, {Code: wire.CodeTenantLocked}}, ErrCommitUnknown, 2},
		{"conflict at once", []*wire.Response{{Code: wire.CodeConflict}}, ErrConflict, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFakeServer(t)
			var commits atomic.Int32
			srv.set(func(s *fakeServer) { s.hook = commitHook(tc.answers, &commits) })
			db := open(t, acmeToken, srv.addr)
			tx := db.Tenant("acme").newTx(false)
			tx.Set([]byte("k"), []byte("v"))
			err := tx.commit(ctxTimeout(t, 5*time.Second))
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if tx.CommittedVersion() != 9 {
					t.Fatalf("committed version %d", tx.CommittedVersion())
				}
			} else if !errors.Is(err, tc.want) {
				t.Fatalf("commit = %v, want %v", err, tc.want)
			}
			if tc.want == ErrConflict && errors.Is(err, ErrCommitUnknown) {
				t.Fatalf("a conflict after a resend is definite, got %v", err)
			}
			reqs := srv.requests(wire.OpCommit)
			if tc.commits != 0 && len(reqs) != int(tc.commits) {
				t.Fatalf("%d commits sent, want %d", len(reqs), tc.commits)
			}
			for _, r := range reqs {
				if string(r.TxnID) != string(reqs[0].TxnID) || len(r.TxnID) != 16 || r.ReadVersion != 7 || r.TenantID != 1 {
					t.Fatalf("commit %+v differs from the first %+v", r, reqs[0])
				}
			}
		})
	}
}
