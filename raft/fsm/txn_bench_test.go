package fsm

import (
	"fmt"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// BenchmarkFSMApply measures the apply cost per command, in batches of 64
// as raft hands them over, on an on-disk store: a one-key TenantWrite (data,
// version, history entry, pruning), and a TxnCommit that reads 2 keys at a
// read version 32 writes back (the conflict check looks back over 32 entries) and
// writes 2.
//
//	go test -run XXX -bench BenchmarkFSMApply ./raft
func BenchmarkFSMApply(b *testing.B) {
	for _, kind := range []string{"tenant-write", "txn-commit"} {
		b.Run(kind, func(b *testing.B) {
			st, err := store.Open(b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			f, err := New(st, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			index := uint64(0)
			apply := func(cmds ...command.Command) []any {
				logs := make([]Entry, len(cmds))
				for i, c := range cmds {
					data, err := command.Encode(c)
					if err != nil {
						b.Fatal(err)
					}
					index++
					logs[i] = Entry{Index: index, Command: true, Data: data}
				}
				return f.ApplyBatch(logs)
			}
			res := apply(&command.CreateTenant{Name: "bench"})[0].(*Result)
			if res.Err != nil {
				b.Fatal(res.Err)
			}
			id := res.TenantID
			value := make([]byte, 100)
			at := time.Now().UnixNano()
			n := 0
			cmd := func() command.Command {
				n++
				at += int64(time.Millisecond)
				k := fmt.Appendf(nil, "k%05d", n%10000)
				if kind == "tenant-write" {
					return &command.TenantWrite{TenantID: id, TenantName: "bench", At: at, Ops: []command.Op{{Kind: command.OpSet, Key: k, Value: value}}}
				}
				k2 := fmt.Appendf(nil, "j%05d", n%10000)
				rv := uint64(max(n-32, 0))
				return &command.TxnCommit{TenantID: id, TenantName: "bench", At: at, ReadVersion: rv,
					Reads: []command.KeyRange{{Start: k, End: append(k, 0)}, {Start: k2, End: append(k2, 0)}},
					Ops:   []command.Op{{Kind: command.OpSet, Key: k, Value: value}, {Kind: command.OpSet, Key: k2, Value: value}}}
			}
			b.ReportAllocs()
			batch := make([]command.Command, 64)
			for b.Loop() {
				for i := range batch {
					batch[i] = cmd()
				}
				for _, r := range apply(batch...) {
					if err := r.(*Result).Err; err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/cmd")
		})
	}
}
