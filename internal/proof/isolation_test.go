package proof

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/client"
	"github.com/tenantkv/tenantkv/internal/wire"
)

// The isolation attack suite. Tenant B ("beta"), with a token of its own,
// tries every operation and option of the protocol against tenant A
// ("alpha"), the system keyspace and the boundary between tenants, over raw
// frames and through the client library. Whatever B does:
//
//   - no answer carries A's values, A's key names, A's record or anybody's
//     tokens, tenant list or cluster status;
//   - A's data (checksummed by an operator scan), A's record and A's usage
//     counters are unchanged, and so are the tenant and token lists;
//   - naming A gets byte for byte the answer naming a tenant that does not
//     exist, so B cannot learn whether A exists.

// isolationFixture is a node with the victim A, the attacker B and what the
// attacks need to know.
type isolationFixture struct {
	c        *cluster
	addr     string
	op       *rawConn // operator, raw
	aID, bID uint64
	aSecret  string // prefix of every value of A
	aKeyName string // a key of A that no attack names
	bToken   string
	aToken   string
	cursor   string // an export cursor of A, opened by the operator
	attempts atomic.Int64
	nonEmpty atomic.Int64 // answers to B that carried data (B's own)
}

const (
	nameA     = "alpha"
	nameB     = "beta"
	nameC     = "charlie"
	nameGhost = "ghost"   // never exists
	ghostID   = 1_000_000 // a tenant ID never handed out in these tests
)

func newIsolationFixture(t *testing.T, nodes int) *isolationFixture {
	t.Helper()
	return newIsolationFixtureOn(t, newCluster(t, nodes))
}

// newIsolationFixtureOn is newIsolationFixture on a cluster already
// started (its nodes serving HTTP, for the attacks over the HTTP API).
func newIsolationFixtureOn(t *testing.T, c *cluster) *isolationFixture {
	t.Helper()
	f := &isolationFixture{c: c}
	ctx := t.Context()
	l, err := c.waitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.addr = l.listen
	f.op, _, err = loginRaw(ctx, f.addr, c.token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.op.Close() })
	var rnd [6]byte
	binary.BigEndian.PutUint32(rnd[:], rand.Uint32())
	f.aSecret = "A-SECRET-" + hex.EncodeToString(rnd[:4]) + "-"
	f.aKeyName = "A-KEYNAME-" + hex.EncodeToString(rnd[:4])

	info := f.mustOp(t, &wire.Request{Op: wire.OpCreateTenant, Name: nameA, Config: &wire.TenantConfig{Labels: map[string]string{"owner": "a"}}})
	f.aID = info.Tenant.ID
	info = f.mustOp(t, &wire.Request{Op: wire.OpCreateTenant, Name: nameB})
	f.bID = info.Tenant.ID
	// A's keys include ones that look like the other side of the boundary.
	aPrefix := binary.BigEndian.AppendUint64(nil, f.aID)
	bPrefix := binary.BigEndian.AppendUint64(nil, f.bID)
	aKeys := [][]byte{[]byte(f.aKeyName), []byte("a-key-1"), []byte("a-key-2"), {0x00}, {0xFF}, bytes.Repeat([]byte{0xFF}, 16),
		aPrefix, bPrefix, append(append([]byte(nil), bPrefix...), "b-key"...), []byte("shared-name")}
	for i, k := range aKeys {
		f.mustOp(t, &wire.Request{Op: wire.OpSet, Tenant: nameA, Key: k, Value: fmt.Appendf(nil, "%s%d", f.aSecret, i)})
	}
	f.seedB(t)
	// C, created after B, is B's other neighbour: an iterator of B that ran
	// over either end of B's span would meet A's or C's keys.
	f.mustOp(t, &wire.Request{Op: wire.OpCreateTenant, Name: nameC})
	for i, k := range aKeys {
		f.mustOp(t, &wire.Request{Op: wire.OpSet, Tenant: nameC, Key: k, Value: fmt.Appendf(nil, "%sC%d", f.aSecret, i)})
	}
	f.bToken = f.mustOp(t, &wire.Request{Op: wire.OpNewToken, Name: nameB}).Token
	f.aToken = f.mustOp(t, &wire.Request{Op: wire.OpNewToken, Name: nameA}).Token
	waitTokenEverywhere(t, c.endpoints(), f.bToken)
	waitTokenEverywhere(t, c.endpoints(), f.aToken)
	exp := f.mustOp(t, &wire.Request{Op: wire.OpExportTenant, Name: nameA, Limit: 1})
	if !exp.More || exp.Next == "" {
		t.Fatalf("export of A did not leave a cursor open: %+v", exp)
	}
	f.cursor = exp.Next
	return f
}

// seedB writes B's own keys, boundary-looking ones included, so that B's
// reads have data of B's next to data of A and C.
func (f *isolationFixture) seedB(t *testing.T) {
	t.Helper()
	muts := []wire.Mutation{}
	for _, k := range [][]byte{{0x00}, {0xFF}, bytes.Repeat([]byte{0xFF}, 16), binary.BigEndian.AppendUint64(nil, f.aID),
		binary.BigEndian.AppendUint64(nil, f.bID), []byte("a-key-1"), []byte("shared-name"), []byte("b-key-1"), []byte("b-key-2")} {
		muts = append(muts, wire.Mutation{Kind: wire.MutSet, Key: k, Value: []byte("B-OWN")})
	}
	f.mustOp(t, &wire.Request{Op: wire.OpBatch, Tenant: nameB, Muts: muts})
}

func (f *isolationFixture) mustOp(t *testing.T, req *wire.Request) *wire.Response {
	t.Helper()
	resp, _, err := f.op.call(req)
	if err != nil {
		t.Fatalf("operator %s: %v", req.Op, err)
	}
	if resp.Code != wire.CodeOK {
		t.Fatalf("operator %s: %s: %s", req.Op, resp.Code, resp.Msg)
	}
	return resp
}

// aState is everything of A that an attack must leave alone.
type aState struct {
	checksum string
	keys     int
	record   wire.TenantInfo // usage included
	tenants  []string        // every tenant: id, name, state
	tokens   []string        // every token ID with its tenant
}

// snapshotA reads A's data (checksummed), record and usage, and the tenant
// and token lists. The scan that checksums the data is itself counted as
// reads of A, so a snapshot taken before an attack scans first and one
// taken after reads the record first: the two records then bracket exactly
// the attack.
func (f *isolationFixture) snapshotA(t *testing.T, recordFirst bool) aState {
	t.Helper()
	var st aState
	record := func() {
		rec := f.mustOp(t, &wire.Request{Op: wire.OpGetTenant, Name: nameA}).Tenant
		rec.Usage.DiskBytes = 0 // an estimate that moves with compactions
		st.record = *rec
	}
	if recordFirst {
		record()
	}
	h := sha256.New()
	var start []byte
	for {
		resp := f.mustOp(t, &wire.Request{Op: wire.OpScan, Tenant: nameA, Key: start, Limit: 3})
		for _, kv := range resp.KVs {
			fmt.Fprintf(h, "%x=%x;", kv.Key, kv.Value)
			st.keys++
		}
		if !resp.More {
			break
		}
		start = append(append([]byte(nil), resp.KVs[len(resp.KVs)-1].Key...), 0)
	}
	st.checksum = hex.EncodeToString(h.Sum(nil))
	if !recordFirst {
		record()
	}
	for _, ti := range f.mustOp(t, &wire.Request{Op: wire.OpListTenants}).Tenants {
		st.tenants = append(st.tenants, fmt.Sprintf("%d:%s:%s", ti.ID, ti.Name, ti.State))
	}
	for _, tk := range f.mustOp(t, &wire.Request{Op: wire.OpListTokens}).Tokens {
		st.tokens = append(st.tokens, tk.ID+":"+tk.Tenant)
	}
	return st
}

// compareA fails t if A or the system keyspace changed between two
// snapshots.
func compareA(t *testing.T, what string, before, after aState) (same bool) {
	t.Helper()
	same = true
	fail := func(format string, args ...any) {
		t.Helper()
		same = false
		totals.Violations.Add(1)
		t.Errorf(format, args...)
	}
	if before.checksum != after.checksum || before.keys != after.keys {
		fail("ISOLATION: %s changed A's data: %d keys, checksum %s before; %d keys, checksum %s after", what, before.keys, before.checksum, after.keys, after.checksum)
	}
	if !reflect.DeepEqual(before.record, after.record) {
		fail("ISOLATION: %s changed or counted A's record or usage:\nbefore %+v\nafter  %+v", what, before.record, after.record)
	}
	if !reflect.DeepEqual(before.tenants, after.tenants) {
		fail("ISOLATION: %s changed the tenant list: %v → %v", what, before.tenants, after.tenants)
	}
	if !reflect.DeepEqual(before.tokens, after.tokens) {
		fail("ISOLATION: %s changed the token list: %v → %v", what, before.tokens, after.tokens)
	}
	return same
}

// leakIn reports what of A (or of the operator's view) an answer to B
// carries, or "".
func (f *isolationFixture) leakIn(raw []byte, resp *wire.Response) string {
	switch {
	case bytes.Contains(raw, []byte(f.aSecret)):
		return "a value of A"
	case bytes.Contains(raw, []byte(f.aKeyName)):
		return "a key name of A"
	case resp == nil:
		return ""
	case resp.Tenant != nil && (resp.Tenant.ID != f.bID || resp.Tenant.Name != nameB):
		return fmt.Sprintf("the record of tenant %d %q", resp.Tenant.ID, resp.Tenant.Name)
	case len(resp.Tenants) > 0:
		return "the tenant list"
	case len(resp.Tokens) > 0:
		return "the token list"
	case resp.Token != "" || resp.TokenID != "":
		return "a new token"
	case resp.Cluster != nil:
		return "the cluster status"
	case resp.Operator:
		return "operator rights"
	case resp.Next != "" && resp.Next == f.cursor:
		return "A's export cursor"
	case resp.TenantID != 0 && resp.TenantID != f.bID:
		return fmt.Sprintf("tenant ID %d", resp.TenantID)
	}
	return ""
}

// normalized is an answer's encoding without its request ID.
func normalized(resp *wire.Response) []byte {
	r := *resp
	r.ID = 0
	b, _ := wire.AppendResponse(nil, &r)
	return b
}

// attackRaw sends req as B on conn and checks the answer for leaks. When req
// names A (in Tenant or Name) it also sends the same request naming a tenant
// that does not exist and checks that the answers are identical.
func (f *isolationFixture) attackRaw(t *testing.T, conn *rawConn, req wire.Request) {
	t.Helper()
	orig := req
	resp, raw, err := conn.call(&req)
	f.attempts.Add(1)
	totals.Attacks.Add(1)
	if err != nil {
		t.Fatalf("B's connection broke on %s %+v: %v", orig.Op, orig, err)
	}
	if leak := f.leakIn(raw, resp); leak != "" {
		totals.Violations.Add(1)
		t.Errorf("ISOLATION LEAK: B got %s from %s with %s", leak, orig.Op, describe(orig))
	}
	if resp.Code == wire.CodeInternal {
		t.Errorf("B's %s with %s got an internal error: %s", orig.Op, describe(orig), resp.Msg)
	}
	if len(resp.Value) > 0 || len(resp.KVs) > 0 {
		f.nonEmpty.Add(1)
	}
	if f.attempts.Load()%64 == 0 {
		f.seedB(t) // B's attacks delete B's keys; put them back
	}
	if orig.Tenant != nameA && orig.Name != nameA && orig.TenantID != f.aID {
		return
	}
	ghost := orig
	if ghost.Tenant == nameA {
		ghost.Tenant = nameGhost
	}
	if ghost.Name == nameA {
		ghost.Name = nameGhost
	}
	if ghost.TenantID == f.aID {
		ghost.TenantID = ghostID
	}
	gresp, _, err := conn.call(&ghost)
	f.attempts.Add(1)
	totals.Attacks.Add(1)
	if err != nil {
		t.Fatalf("B's connection broke: %v", err)
	}
	// Errors must be identical byte for byte; a success (B's own tenant,
	// with a forged TenantID) may differ in B's own data version.
	same := resp.Code == gresp.Code && resp.Msg == gresp.Msg
	if resp.Code != wire.CodeOK {
		same = bytes.Equal(normalized(resp), normalized(gresp))
	}
	if !same {
		totals.Violations.Add(1)
		t.Errorf("EXISTENCE LEAK: %s naming A answers %s %q, naming a missing tenant answers %s %q (%s)",
			orig.Op, resp.Code, resp.Msg, gresp.Code, gresp.Msg, describe(orig))
	}
}

func describe(r wire.Request) string {
	var parts []string
	add := func(k string, v any) { parts = append(parts, fmt.Sprintf("%s=%q", k, v)) }
	if r.Tenant != "" {
		add("tenant", trunc(r.Tenant))
	}
	if r.Name != "" {
		add("name", trunc(r.Name))
	}
	if r.Key != nil {
		add("key", trunc(string(r.Key)))
	}
	if r.End != nil {
		add("end", trunc(string(r.End)))
	}
	if r.Limit != 0 {
		parts = append(parts, fmt.Sprintf("limit=%d", r.Limit))
	}
	if r.Reverse {
		parts = append(parts, "reverse")
	}
	if r.Stale {
		parts = append(parts, "stale")
	}
	if len(r.Muts) > 0 {
		parts = append(parts, fmt.Sprintf("%d mutations", len(r.Muts)))
	}
	if r.Cursor != "" {
		add("cursor", trunc(r.Cursor))
	}
	if r.TenantID != 0 {
		parts = append(parts, fmt.Sprintf("tenant-id=%d", r.TenantID))
	}
	if r.ReadVersion != 0 {
		parts = append(parts, fmt.Sprintf("read-version=%d", r.ReadVersion))
	}
	return strings.Join(parts, " ")
}

func trunc(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}

// allOps is every operation of the protocol and a few that are not.
func allOps() []wire.Op {
	var ops []wire.Op
	for o := range 256 {
		if wire.Op(o).Known() {
			ops = append(ops, wire.Op(o))
		}
	}
	return append(ops, 0, 3, 16, 29, 39, 53, 200, 255)
}

// attackPools are the values the attacks draw every field from.
type attackPools struct {
	names  []string
	keys   [][]byte
	ends   [][]byte
	limits []int
	muts   [][]wire.Mutation
	cursor []string
	// Transactions and watches.
	ids      []uint64 // tenant IDs: forged ones name A, C, nobody
	versions []uint64
	reads    [][]wire.KeyRange
	expects  [][]byte
	flags    []uint8
	waits    []time.Duration
}

func (f *isolationFixture) pools() attackPools {
	aPrefix := binary.BigEndian.AppendUint64(nil, f.aID)
	bPrefix := binary.BigEndian.AppendUint64(nil, f.bID)
	ff := bytes.Repeat([]byte{0xFF}, 20)
	return attackPools{
		names: []string{nameA, "", "ALPHA", "Alpha", "alpha ", " alpha", "alpha\x00", "alpha\n", "alph", "alphaa",
			strings.Repeat("a", 1000), "\xff\xfe", "\xff", nameB, "BETA", "beta ", "beta\x00", nameGhost, "system",
			fmt.Sprint(f.aID), "../alpha", "alpha/", "*", "%", "alpha,beta"},
		keys: [][]byte{nil, {}, aPrefix, append(append([]byte(nil), aPrefix...), "a-key-1"...), bPrefix,
			{0xFF}, ff, {0x00}, []byte("a-key-1"), []byte("shared-name"), bytes.Repeat([]byte{'k'}, 10_001),
			bytes.Repeat([]byte{0xFF}, 10_000), {0xFF, 0x00}, []byte("\xfftenant")},
		ends:   [][]byte{nil, {}, ff, aPrefix, bPrefix, {0x00}, {0x01}, []byte("a"), bytes.Repeat([]byte{0xFF}, 10_002)},
		limits: []int{0, -1, math.MinInt64, 1, 2, 1 << 40, math.MaxInt64},
		muts: [][]wire.Mutation{
			nil,
			{{Kind: wire.MutDeleteRange}},
			{{Kind: wire.MutDeleteRange, Key: []byte{}, End: ff}},
			{{Kind: wire.MutDeleteRange, Key: []byte{0}, End: bytes.Repeat([]byte{0xFF}, 9)}},
			{{Kind: wire.MutSet, Key: append(append([]byte(nil), aPrefix...), "a-key-1"...), Value: []byte("pwn")}},
			{{Kind: wire.MutDelete, Key: []byte("a-key-1")}, {Kind: wire.MutDelete, Key: []byte("shared-name")}},
			{{Kind: 9, Key: []byte("x")}},
			{{Kind: wire.MutSet, Key: []byte("x"), Value: []byte("y")}, {Kind: wire.MutDeleteRange, Key: []byte("z"), End: []byte("a")}},
			{{Kind: wire.MutSet}},
		},
		cursor:   []string{"", f.cursor, "00112233445566778899aabb", "../" + f.cursor, strings.ToUpper(f.cursor)},
		ids:      []uint64{0, f.aID, f.bID, f.bID + 1, ghostID, math.MaxUint64, 0xFF00_0000_0000_0000},
		versions: []uint64{0, 1, 2, 1 << 40, math.MaxUint64},
		reads: [][]wire.KeyRange{nil, {{Start: aPrefix}}, {{Start: []byte{}, End: ff}}, {{Start: []byte("b"), End: []byte("a")}},
			{{Start: append(append([]byte(nil), aPrefix...), "a-key-1"...)}, {Start: []byte{0}, End: []byte{1}}}},
		expects: [][]byte{nil, {}, []byte(f.aSecret + "0"), []byte("B-OWN"), []byte("pwn")},
		flags:   []uint8{0, wire.FlagExpectAbsent, wire.FlagDelete, wire.FlagExpectAbsent | wire.FlagDelete, 0xFF},
		// A watch waits up to Wait for a change: keep them short.
		waits: []time.Duration{time.Millisecond, 20 * time.Millisecond, -time.Second},
	}
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

// TestIsolationAttacks is the attack suite on one node. See the comment at
// the top of this file.
func TestIsolationAttacks(t *testing.T) {
	runIsolation(t, 1, 2000, testSeed(t))
}

// runIsolation runs the whole suite on a cluster of nodes, with randomAttacks
// random requests on top of the systematic ones.
func runIsolation(t *testing.T, nodes, randomAttacks int, seed uint64) {
	f := newIsolationFixture(t, nodes)
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(seed, 2))
	t.Logf("isolation: seed %d, A is tenant %d, B is tenant %d", seed, f.aID, f.bID)
	p := f.pools()
	before := f.snapshotA(t, false)

	t.Run("raw-frames", func(t *testing.T) {
		var conns []*rawConn
		for _, nd := range f.c.running() {
			rc, hello, err := loginRaw(ctx, nd.listen, f.bToken)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if hello.Operator || hello.Tenant == nil || hello.Tenant.ID != f.bID {
				t.Fatalf("B's hello: %+v", hello)
			}
			conns = append(conns, rc)
		}
		conn := func() *rawConn { return conns[rng.IntN(len(conns))] }
		// Every operation naming every tenant variant, in both fields.
		for _, op := range allOps() {
			for _, name := range p.names {
				f.attackRaw(t, conn(), wire.Request{Op: op, Tenant: name, Key: []byte("a-key-1"), Value: []byte("pwn"), Wait: time.Millisecond})
				f.attackRaw(t, conn(), wire.Request{Op: op, Name: name, NewName: nameB + "2", State: "locked",
					Config: &wire.TenantConfig{MaxBytes: new(uint64)}, Cursor: f.cursor, Addr: "127.0.0.1:1", Stale: true, Wait: time.Millisecond})
			}
			// B's own tenant, with a forged tenant ID of A's, C's or
			// nobody's, and a read version.
			for _, id := range p.ids {
				f.attackRaw(t, conn(), wire.Request{Op: op, TenantID: id, ReadVersion: 1, Key: []byte("a-key-1"), Value: []byte("pwn"),
					Reads: []wire.KeyRange{{Start: []byte{}}}, Expect: []byte("B-OWN"), Muts: []wire.Mutation{{Kind: wire.MutSet, Key: []byte("a-key-1"), Value: []byte("pwn")}},
					Wait: time.Millisecond})
			}
		}
		// Every data operation on B's own tenant with every boundary key
		// and range, forward and back, stale or not.
		for _, op := range []wire.Op{wire.OpGet, wire.OpSet, wire.OpDelete, wire.OpDeleteRange, wire.OpScan, wire.OpBatch,
			wire.OpCommit, wire.OpCompareAndSwap, wire.OpWatch} {
			for _, k := range p.keys {
				for _, e := range p.ends {
					for _, rev := range []bool{false, true} {
						f.attackRaw(t, conn(), wire.Request{Op: op, Key: k, End: e, Reverse: rev, Stale: rev,
							Limit: pick(rng, p.limits), Value: []byte("pwn"), Muts: pick(rng, p.muts),
							Reads: pick(rng, p.reads), ReadVersion: pick(rng, p.versions), Expect: pick(rng, p.expects),
							Flags: pick(rng, p.flags), Wait: time.Millisecond})
					}
				}
			}
		}
		// Random combinations of every field.
		ops := allOps()
		for range randomAttacks {
			req := wire.Request{
				Op: pick(rng, ops), Tenant: pick(rng, p.names), Key: pick(rng, p.keys), End: pick(rng, p.ends),
				Value: []byte("pwn"), Limit: pick(rng, p.limits), Reverse: rng.IntN(2) == 0, Stale: rng.IntN(2) == 0,
				Muts: pick(rng, p.muts), Cursor: pick(rng, p.cursor), Name: pick(rng, p.names), NewName: pick(rng, p.names),
				State: pick(rng, []string{"", "active", "locked", "read-only", "deleted"}), After: pick(rng, p.names),
				ReadOnly: rng.IntN(2) == 0, TTL: time.Duration(rng.Int64N(int64(time.Hour))) - time.Minute,
				Token: pick(rng, []string{"", f.aToken, f.c.token}), Version: rng.IntN(3),
				TenantID: pick(rng, p.ids), ReadVersion: pick(rng, p.versions), Reads: pick(rng, p.reads),
				Expect: pick(rng, p.expects), Flags: pick(rng, p.flags), Wait: pick(rng, p.waits),
			}
			if rng.IntN(4) == 0 {
				req.TxnID = []byte(fmt.Sprint(rng.Uint64()))
			}
			f.attackRaw(t, conn(), req)
		}
	})

	t.Run("client-library", func(t *testing.T) {
		db, err := client.Open(ctx, f.c.endpoints(), &client.Options{Token: f.bToken})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		check := func(what string, err error, got ...[]byte) {
			t.Helper()
			f.attempts.Add(1)
			totals.Attacks.Add(1)
			for _, g := range got {
				if bytes.Contains(g, []byte(f.aSecret)) || bytes.Contains(g, []byte(f.aKeyName)) {
					totals.Violations.Add(1)
					t.Errorf("ISOLATION LEAK through the client: %s returned A's data", what)
				}
			}
			if err != nil && errors.Is(err, client.ErrInternal) {
				t.Errorf("%s: internal error: %v", what, err)
			}
		}
		errOf := func(name string, f func(tn *client.Tenant) error) string {
			err := f(db.Tenant(name))
			if err == nil {
				return "<nil>"
			}
			return err.Error()
		}
		for _, name := range p.names {
			for _, stale := range []bool{false, true} {
				tn := db.Tenant(name)
				if stale {
					tn = tn.WithStaleReads()
				}
				for _, k := range [][]byte{[]byte("a-key-1"), []byte("shared-name"), {0xFF}} {
					v, err := tn.Get(ctx, k)
					check("Get "+name, err, v)
				}
				for _, r := range []client.KeyRange{{}, client.Prefix(nil), client.Prefix([]byte{0xFF}), {Begin: []byte{0}, End: bytes.Repeat([]byte{0xFF}, 9)}} {
					for _, rev := range []bool{false, true} {
						var got []byte
						var err error
						for kv, e := range tn.Range(ctx, r, &client.RangeOptions{Reverse: rev, PageSize: 2}) {
							if e != nil {
								err = e
								break
							}
							got = append(append(got, kv.Key...), kv.Value...)
						}
						check("Range "+name, err, got)
					}
				}
				if name != "" && name != nameB {
					check("Set "+name, tn.Set(ctx, []byte("a-key-1"), []byte("pwn")))
					check("Delete "+name, tn.Delete(ctx, []byte("a-key-1")))
					check("DeleteRange "+name, tn.DeleteRange(ctx, client.KeyRange{}))
				}
			}
			_, err := db.TenantInfo(ctx, name)
			check("TenantInfo "+name, err)
			if name != "" && name != nameB && err == nil {
				t.Errorf("B read the record of tenant %q", name)
			}
			check("DeleteTenant "+name, db.DeleteTenant(ctx, name))
			_, err = db.NewTenantToken(ctx, name)
			check("NewTenantToken "+name, err)
			_, err = db.CreateTenant(ctx, name, nil)
			check("CreateTenant "+name, err)
		}
		_, err = db.ListTenants(ctx)
		check("ListTenants", err)
		_, err = db.ClusterStatus(ctx)
		check("ClusterStatus", err)
		check("RemoveNode", db.RemoveNode(ctx, f.c.nodes[0].id))
		check("JoinNode", db.JoinNode(ctx, "intruder", "127.0.0.1:1", "", ""))
		// Errors naming A and naming nobody are the same.
		for _, op := range []struct {
			name string
			f    func(tn *client.Tenant) error
		}{
			{"Get", func(tn *client.Tenant) error { _, err := tn.Get(ctx, []byte("a-key-1")); return err }},
			{"Set", func(tn *client.Tenant) error { return tn.Set(ctx, []byte("a-key-1"), []byte("x")) }},
			{"Delete", func(tn *client.Tenant) error { return tn.Delete(ctx, []byte("a-key-1")) }},
			{"DeleteRange", func(tn *client.Tenant) error { return tn.DeleteRange(ctx, client.KeyRange{}) }},
			{"Range", func(tn *client.Tenant) error {
				for _, err := range tn.Range(ctx, client.KeyRange{}, nil) {
					return err
				}
				return nil
			}},
			{"TenantInfo", func(tn *client.Tenant) error { _, err := db.TenantInfo(ctx, tn.Name()); return err }},
		} {
			a, g := errOf(nameA, op.f), errOf(nameGhost, op.f)
			if strings.ReplaceAll(a, nameA, "X") != strings.ReplaceAll(g, nameGhost, "X") || a == "<nil>" {
				totals.Violations.Add(1)
				t.Errorf("EXISTENCE LEAK through the client: %s on A: %s; on a missing tenant: %s", op.name, a, g)
			}
		}
	})

	after := f.snapshotA(t, true)
	unchanged := compareA(t, "B's attacks", before, after)
	t.Logf("isolation: %d attack requests (%d answers carried B's own data), A unchanged: %v", f.attempts.Load(), f.nonEmpty.Load(), unchanged)
	if f.nonEmpty.Load() < 100 {
		t.Errorf("only %d of B's answers carried data: the leak checks had little to look at", f.nonEmpty.Load())
	}

	t.Run("revoked-token", func(t *testing.T) { f.revokedToken(t) })
	t.Run("deleted-tenant-token", func(t *testing.T) { f.deletedTenantToken(t) })
	t.Run("delete-recreate-in-flight", func(t *testing.T) { f.deleteRecreateInFlight(t, rng) })
	totals.Runs.Add(1)
}

// revokedToken: a token revoked by the operator stops working on the
// connections it already opened, and cannot open new ones.
func (f *isolationFixture) revokedToken(t *testing.T) {
	ctx := t.Context()
	tok := f.mustOp(t, &wire.Request{Op: wire.OpNewToken, Name: nameB})
	waitTokenEverywhere(t, f.c.endpoints(), tok.Token)
	rc, _, err := loginRaw(ctx, f.addr, tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	db, err := client.Open(ctx, f.c.endpoints(), &client.Options{Token: tok.Token})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Tenant("").Set(ctx, []byte("before-revoke"), []byte("ok")); err != nil {
		t.Fatal(err)
	}
	f.mustOp(t, &wire.Request{Op: wire.OpRevokeToken, Name: tok.TokenID})
	for _, op := range allOps() {
		req := wire.Request{Op: op, Key: []byte("before-revoke"), Value: []byte("x")}
		resp, raw, err := rc.call(&req)
		f.attempts.Add(1)
		totals.Attacks.Add(1)
		if err != nil {
			t.Fatalf("%s after revoke: %v", op, err)
		}
		if resp.Code != wire.CodePermissionDenied && resp.Code != wire.CodeUnknownOp {
			totals.Violations.Add(1)
			t.Errorf("REVOKED TOKEN still works: %s answered %s %q (%d bytes)", op, resp.Code, resp.Msg, len(raw))
		}
	}
	if _, err := db.Tenant("").Get(ctx, []byte("before-revoke")); !errors.Is(err, client.ErrPermissionDenied) {
		totals.Violations.Add(1)
		t.Errorf("REVOKED TOKEN still reads through an open client: %v", err)
	}
	if _, _, err := loginRaw(ctx, f.addr, tok.Token); err == nil {
		totals.Violations.Add(1)
		t.Errorf("REVOKED TOKEN still says hello")
	}
	// A follower accepts a revoked token until it has applied the
	// revocation (it then serves only stale reads with it); wait for that.
	waitRevokedEverywhere(t, f.c.endpoints(), tok.Token)
	if _, err := client.Open(ctx, f.c.endpoints(), &client.Options{Token: tok.Token}); !errors.Is(err, client.ErrPermissionDenied) {
		totals.Violations.Add(1)
		t.Errorf("REVOKED TOKEN still opens a client: %v", err)
	}
}

// deletedTenantToken: a token of a deleted tenant reaches nothing, not even
// the new tenant of the same name.
func (f *isolationFixture) deletedTenantToken(t *testing.T) {
	ctx := t.Context()
	f.mustOp(t, &wire.Request{Op: wire.OpCreateTenant, Name: "gamma"})
	f.mustOp(t, &wire.Request{Op: wire.OpSet, Tenant: "gamma", Key: []byte("k"), Value: []byte("OLD-GAMMA")})
	tok := f.mustOp(t, &wire.Request{Op: wire.OpNewToken, Name: "gamma"}).Token
	rc, _, err := loginRaw(ctx, f.addr, tok)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	f.mustOp(t, &wire.Request{Op: wire.OpDeleteTenant, Name: "gamma"})
	f.mustOp(t, &wire.Request{Op: wire.OpCreateTenant, Name: "gamma"})
	f.mustOp(t, &wire.Request{Op: wire.OpSet, Tenant: "gamma", Key: []byte("k"), Value: []byte("NEW-GAMMA")})
	rc2, hello, err := loginRaw(ctx, f.addr, tok)
	if err == nil {
		defer rc2.Close()
		if hello.Tenant != nil {
			totals.Violations.Add(1)
			t.Errorf("DELETED TENANT'S TOKEN: hello names tenant %+v", hello.Tenant)
		}
	}
	conns := []*rawConn{rc}
	if rc2 != nil {
		conns = append(conns, rc2)
	}
	for _, c := range conns {
		for _, op := range allOps() {
			for _, name := range []string{"", "gamma"} {
				req := wire.Request{Op: op, Tenant: name, Name: name, Key: []byte("k"), Value: []byte("STALE-TOKEN")}
				resp, raw, err := c.call(&req)
				f.attempts.Add(1)
				totals.Attacks.Add(1)
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(raw, []byte("GAMMA")) || (resp.Code != wire.CodePermissionDenied && resp.Code != wire.CodeUnknownOp) {
					totals.Violations.Add(1)
					t.Errorf("DELETED TENANT'S TOKEN: %s naming %q answered %s %q", op, name, resp.Code, resp.Msg)
				}
			}
		}
	}
	v := f.mustOp(t, &wire.Request{Op: wire.OpGet, Tenant: "gamma", Key: []byte("k")}).Value
	if string(v) != "NEW-GAMMA" {
		totals.Violations.Add(1)
		t.Errorf("the new gamma holds %q", v)
	}
}

// deleteRecreateInFlight: while tenant delta's own token and B hammer delta,
// the operator deletes delta and creates it again. Nothing written with the
// old token may land in the new delta, the old token may never read the new
// delta's data, and B never reaches either.
func (f *isolationFixture) deleteRecreateInFlight(t *testing.T, rng *rand.Rand) {
	ctx := t.Context()
	f.mustOp(t, &wire.Request{Op: wire.OpCreateTenant, Name: "delta"})
	oldTok := f.mustOp(t, &wire.Request{Op: wire.OpNewToken, Name: "delta"}).Token
	waitTokenEverywhere(t, f.c.endpoints(), oldTok)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var mu sync.Mutex
	var problems []string
	report := func(format string, args ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	for w := range 4 {
		token := oldTok
		if w == 3 {
			token = f.bToken
		}
		db, err := client.Open(ctx, f.c.endpoints(), &client.Options{Token: token})
		if err != nil {
			t.Fatal(err)
		}
		wrng := rand.New(rand.NewPCG(rng.Uint64(), uint64(w)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer db.Close()
			tn := db.Tenant("delta")
			for i := 0; !stop.Load(); i++ {
				opCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
				k := fmt.Appendf(nil, "k%d", wrng.IntN(20))
				var got []byte
				var err error
				switch wrng.IntN(3) {
				case 0:
					err = tn.Set(opCtx, k, fmt.Appendf(nil, "OLD-DELTA-%d-%d", w, i))
				case 1:
					got, err = tn.Get(opCtx, k)
				default:
					for kv, e := range tn.Range(opCtx, client.KeyRange{}, nil) {
						if e != nil {
							err = e
							break
						}
						got = append(got, kv.Value...)
					}
				}
				cancel()
				f.attempts.Add(1)
				totals.Attacks.Add(1)
				if bytes.Contains(got, []byte("NEW-DELTA")) {
					report("a token of the old delta (worker %d) read the new delta's data: %q", w, got)
				}
				if w == 3 && err == nil {
					report("B reached delta: %q", got)
				}
			}
		}()
	}
	pause(ctx, 300*time.Millisecond)
	f.mustOp(t, &wire.Request{Op: wire.OpDeleteTenant, Name: "delta"})
	f.mustOp(t, &wire.Request{Op: wire.OpCreateTenant, Name: "delta"})
	const newKeys = 5
	for i := range newKeys {
		f.mustOp(t, &wire.Request{Op: wire.OpSet, Tenant: "delta", Key: fmt.Appendf(nil, "n%d", i), Value: []byte("NEW-DELTA")})
	}
	pause(ctx, 500*time.Millisecond)
	stop.Store(true)
	wg.Wait()
	for _, p := range problems {
		totals.Violations.Add(1)
		t.Errorf("ISOLATION: %s", p)
	}
	scan := f.mustOp(t, &wire.Request{Op: wire.OpScan, Tenant: "delta"})
	for _, kv := range scan.KVs {
		if !bytes.Equal(kv.Value, []byte("NEW-DELTA")) {
			totals.Violations.Add(1)
			t.Errorf("ISOLATION: the new delta holds %q=%q, written through the old one", kv.Key, kv.Value)
		}
	}
	info := f.mustOp(t, &wire.Request{Op: wire.OpGetTenant, Name: "delta"}).Tenant
	if len(scan.KVs) != newKeys || info.Usage.Keys != newKeys {
		totals.Violations.Add(1)
		t.Errorf("the new delta has %d keys and counts %d; want %d", len(scan.KVs), info.Usage.Keys, newKeys)
	}
}
