package raft

import (
	"fmt"
	"os"
	"strings"
	"testing"

	hraft "github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/store"
)

// TestDumpRecordedResults writes every command's result of the recording,
// as this build applies it one entry per batch, to TENANTKV_DUMP_RESULTS.
func TestDumpRecordedResults(t *testing.T) {
	out := os.Getenv("TENANTKV_DUMP_RESULTS")
	if out == "" {
		t.Skip("set TENANTKV_DUMP_RESULTS")
	}
	entries, _ := loadRecording(t)
	st, err := store.Open(t.TempDir(), nil)
	require.NoError(t, err)
	defer st.Close()
	f, err := NewFSM(st, nil, nil)
	require.NoError(t, err)
	var b strings.Builder
	b.WriteString("# Each command's result when the release that made recorded.log applied it (one line per command, batch members in order).\n")
	one := func(idx uint64, r *Result) {
		if r.err != nil {
			fmt.Fprintf(&b, "%d error %s\n", idx, r.err)
			return
		}
		fmt.Fprintf(&b, "%d ok tenant=%d version=%d swapped=%v\n", idx, r.TenantID, r.Version, r.Swapped)
	}
	for _, l := range toRaftLogs(fsmEntries(entries)) {
		switch r := f.ApplyBatch([]*hraft.Log{l})[0].(type) {
		case *Result:
			one(l.Index, r)
		case *batchResult:
			for _, sub := range r.results {
				one(l.Index, sub)
			}
		}
	}
	require.NoError(t, os.WriteFile(out, []byte(b.String()), 0o644))
}
