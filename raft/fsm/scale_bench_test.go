package fsm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// The tenant-scale benchmarks of issue 5: looking up a tenant or a token
// must not get dearer as the cluster holds more tenants. Each count builds
// its own on-disk store; compare the sub-benchmarks of one op across
// counts, e.g. with benchstat:
//
//	go test -run '^$' -bench BenchmarkTenantLookup -benchmem -count 6 ./raft > new.txt
//	benchstat -col /tenants old.txt new.txt
//
// -short skips the 100,000-tenant store.

// scaleTenantCounts are the numbers of tenants the scale benchmarks run at.
var scaleTenantCounts = []int{10, 10_000, 100_000}

// scaleShortMax is the largest count run under -short.
const scaleShortMax = 10_000

// scaleProbes is the length of the precomputed sequence of random tenants a
// lookup benchmark cycles through. It is the same for every count, so only
// the store differs between counts.
const scaleProbes = 1 << 16

// scaleBatch is the number of log entries per ApplyBatch while populating.
const scaleBatch = 4096

// scaleFixture is an FSM over an on-disk store holding n tenants, each with
// one tenant token, in the state raft would leave it in after applying the
// CreateTenant and PutToken commands.
type scaleFixture struct {
	fsm    *Machine
	names  []string
	ids    []keyspace.TenantID
	tokens []string // token IDs, tokens[i] bound to ids[i]
	probes []int    // random indexes into names, ids and tokens
}

// BenchmarkTenantLookup measures the read helpers every request goes
// through, FSM.LookupTenant (by name, operator requests), FSM.TenantByID
// (tenant tokens) and FSM.Token (authentication, and the revocation check
// of every request), for random existing tenants of a store of 10, 10,000
// and 100,000 tenants. The store of one count is built once, by applying
// CreateTenant and PutToken entries straight through FSM.ApplyBatch, then
// flushed so that lookups read sstables as after a restart, read once
// whole to warm the block cache, and shared by the sub-benchmarks of that
// count.
func BenchmarkTenantLookup(b *testing.B) {
	for _, n := range scaleTenantCounts {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			if testing.Short() && n > scaleShortMax {
				b.Skipf("-short: at most %d tenants", scaleShortMax)
			}
			fx := newScaleFixture(b, n)
			b.Run("LookupTenant", func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					k := fx.probes[i%scaleProbes]
					t, err := fx.fsm.LookupTenant(fx.names[k])
					if err != nil {
						b.Fatal(err)
					}
					if t.ID != fx.ids[k] {
						b.Fatalf("tenant %q has id %d, want %d", fx.names[k], t.ID, fx.ids[k])
					}
					i++
				}
			})
			b.Run("TenantByID", func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					k := fx.probes[i%scaleProbes]
					t, err := fx.fsm.TenantByID(fx.ids[k])
					if err != nil {
						b.Fatal(err)
					}
					if t.Name != fx.names[k] {
						b.Fatalf("tenant %d is named %q, want %q", fx.ids[k], t.Name, fx.names[k])
					}
					i++
				}
			})
			b.Run("Token", func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					k := fx.probes[i%scaleProbes]
					tok, err := fx.fsm.Token(fx.tokens[k])
					if err != nil {
						b.Fatal(err)
					}
					if tok.TenantID != fx.ids[k] {
						b.Fatalf("token %q is bound to %d, want %d", fx.tokens[k], tok.TenantID, fx.ids[k])
					}
					i++
				}
			})
		})
	}
}

// newScaleFixture builds a store of n tenants in b.TempDir(). It lives as
// long as b, the parent of the per-op sub-benchmarks, which Go runs once
// whatever -count says (only leaf benchmarks are repeated).
func newScaleFixture(b *testing.B, n int) *scaleFixture {
	b.Helper()
	start := time.Now()
	st, err := store.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	f, err := New(st, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	fx := &scaleFixture{fsm: f}
	r := rand.New(rand.NewPCG(5, uint64(n)))
	created := time.Unix(1700000000, 0).UTC()
	index := f.AppliedIndex()
	apply := func(cmds []command.Command) []*Result {
		logs := make([]Entry, len(cmds))
		for i, c := range cmds {
			data, err := command.Encode(c)
			if err != nil {
				b.Fatal(err)
			}
			index++
			logs[i] = Entry{Index: index, Command: true, Data: data}
		}
		out := f.ApplyBatch(logs)
		res := make([]*Result, len(out))
		for i, o := range out {
			res[i] = o.(*Result)
			if res[i].Err != nil {
				b.Fatalf("apply %T: %v", cmds[i], res[i].Err)
			}
		}
		return res
	}
	cmds := make([]command.Command, 0, scaleBatch)
	for lo := 0; lo < n; lo += scaleBatch {
		hi := min(lo+scaleBatch, n)
		cmds = cmds[:0]
		for i := lo; i < hi; i++ {
			name := fmt.Sprintf("tenant-%07d", i)
			fx.names = append(fx.names, name)
			cmds = append(cmds, &command.CreateTenant{Name: name, CreatedAt: created})
		}
		for _, res := range apply(cmds) {
			fx.ids = append(fx.ids, res.TenantID)
		}
		// One token per tenant, shaped like the server's: a 16-hex-digit ID
		// and the SHA-256 of a secret.
		cmds = cmds[:0]
		for i := lo; i < hi; i++ {
			var idb [8]byte
			for j := range idb {
				idb[j] = byte(r.UintN(256))
			}
			id := hex.EncodeToString(idb[:])
			hash := sha256.Sum256([]byte("tkv_" + id + "_secret"))
			fx.tokens = append(fx.tokens, id)
			cmds = append(cmds, &command.PutToken{Token: command.TokenRecord{ID: id, Hash: hash[:], TenantID: fx.ids[i], CreatedAt: created}})
		}
		apply(cmds)
	}
	if err := st.Flush(); err != nil {
		b.Fatal(err)
	}
	// Read every record once, so that the timed loops start from a warm
	// block cache instead of each count's first runs paying to fill it.
	for i, name := range fx.names {
		if _, err := f.LookupTenant(name); err != nil {
			b.Fatal(err)
		}
		if _, err := f.Token(fx.tokens[i]); err != nil {
			b.Fatal(err)
		}
	}
	fx.probes = make([]int, scaleProbes)
	for i := range fx.probes {
		fx.probes[i] = r.IntN(n)
	}
	b.Logf("populated %d tenants and %d tokens in %v", n, n, time.Since(start).Round(time.Millisecond))
	return fx
}
