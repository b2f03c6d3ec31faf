package fsm

import (
	"fmt"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/keyspace"
)

// BenchmarkDueActions measures the leader's look for due deadlines: with
// n tenants in trial, of which 64 are due, the cost should not grow with
// n (a btree seek and 64 steps), unlike a scan of the tenants.
//
//	go test -run - -bench DueActions ./raft/fsm/
func BenchmarkDueActions(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			c := newCatalog()
			for i := range n {
				id := keyspace.TenantID(i + 1)
				rec := &keyspace.Tenant{ID: id, Name: fmt.Sprintf("t%d", i), State: keyspace.StateTrial,
					TrialEnds: t0.Add(time.Duration(i) * time.Second)}
				c.tenants[id] = &tenantState{rec: rec}
				c.setDeadline(nil, rec)
			}
			f := &Machine{cat: c}
			now := t0.Add(63 * time.Second) // 64 due
			for b.Loop() {
				if got := f.DueActions(now, 64); len(got) != 64 {
					b.Fatalf("%d due", len(got))
				}
			}
		})
	}
}
