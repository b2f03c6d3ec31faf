package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// TestMachineMatchesModel applies seeded random command sequences to a real
// Machine over Pebble and to the reference model (model_helpers_test.go),
// and compares, after every ApplyBatch, each command's result and all the
// replicated state the read helpers expose: tenants, data with per-key
// versions, usage, versions and the oldest readable version, the write
// history as watches read it, tokens. Commands go several per ApplyBatch
// and several per batch entry; the machine is restarted now and then (and
// the last batch replayed to it), and a second machine restored from a
// snapshot follows the same log, is restarted now and then too, and must
// keep an identical store.
//
// TENANTKV_SEED replays a run; TENANTKV_MODEL_STEPS sets its length in
// commands (2,000 by default).
func TestMachineMatchesModel(t *testing.T) {
	steps := 2000
	if s := os.Getenv("TENANTKV_MODEL_STEPS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err, "TENANTKV_MODEL_STEPS")
		steps = n
	}
	seed := testSeed(t)
	runModel(t, seed, steps)
}

// modelRun is one run: the machine under test (and its twin, once forked),
// the model, and the generator's state.
type modelRun struct {
	t     *testing.T
	seed  uint64
	r     *rand.Rand
	h     *fsmHarness
	twin  *fsmHarness
	m     *refModel
	now   int64
	step  int // commands generated so far
	batch int
	// txns are recent commits, for retries; txnSeq numbers fresh IDs.
	txns   []*command.TxnCommit
	txnSeq int
	tokSeq int
	// stats count what the run exercised, to show it is not vacuous.
	stats map[string]int
}

// genCmd is a generated command with what the model said of it.
type genCmd struct {
	cmd  command.Command
	bad  bool
	step int
	want refResult
}

func runModel(t *testing.T, seed uint64, steps int) {
	run := &modelRun{
		t: t, seed: seed, r: rand.New(rand.NewPCG(seed, 0x6d6f64656c)),
		h: newFSMHarness(t), m: newRefModel(),
		now:   time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano(),
		stats: map[string]int{},
	}
	for run.step < steps {
		run.batch++
		cmds := run.genBatch(min(1+run.r.IntN(8), steps-run.step))
		groups := run.group(cmds)
		entries := run.h.entriesOf(groups)
		out := run.h.fsm.ApplyBatch(entries)
		run.checkResults("machine", cmds, flattenResults(out))
		if run.twin != nil {
			tw := run.twin.entriesOf(groups)
			run.checkResults("twin", cmds, flattenResults(run.twin.fsm.ApplyBatch(tw)))
		}
		run.checkState("machine", run.h, cmds)
		if run.twin != nil {
			run.checkState("twin", run.twin, cmds)
			if a, b := run.h.checksum(), run.twin.checksum(); a != b {
				run.failf(cmds, "checksums differ: machine %x, twin restored from a snapshot %x", a, b)
			}
		}
		switch x := run.r.IntN(100); {
		case x < 3:
			run.restart(run.h, entries, "machine", cmds)
		case x < 4 && run.twin != nil:
			// A restored store, restarted, once held a tenant deleted
			// since its restore (seed 1796218131146874798 under -race):
			// store.Restore's range deletion started at the empty key,
			// which made a compaction skip the later deletion
			// (store.TestRestoreThenClearSurvivesCompaction).
			run.restart(run.twin, nil, "twin", cmds)
		case x < 6:
			run.twin = run.h.fork()
			run.stats["snapshot restores"]++
			run.checkState("twin", run.twin, cmds)
		}
	}
	require.Zero(t, run.h.fatal.Load(), "storage failures")
	t.Logf("%d commands in %d batches: %v", run.step, run.batch, run.stats)
	// A run that exercised none of the interesting outcomes checks little:
	// the mix below makes each of them near certain in 2,000 commands.
	if steps >= 2000 {
		// "dup" (a retried TxnID) is rare, a few per run, and absent in
		// some: it is counted, not required.
		for _, k := range []string{"conflict", "too old", "quota", "swapped", "watch too old", "pruned", "read-only", "locked", "not found"} {
			require.Positive(t, run.stats[k], "the run never saw %q", k)
		}
	}
}

// failf stops the test with the seed, the batch and its commands.
func (run *modelRun) failf(cmds []genCmd, format string, args ...any) {
	run.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d (replay with TENANTKV_SEED=%d), batch %d: ", run.seed, run.seed, run.batch)
	fmt.Fprintf(&b, format, args...)
	b.WriteString("\ncommands of the batch:")
	for _, c := range cmds {
		fmt.Fprintf(&b, "\n  step %d: %s (model: %s)", c.step, describe(c.cmd), describeResult(c.want))
	}
	run.t.Fatal(b.String())
}

func describeResult(r refResult) string {
	if r.err != nil {
		return r.err.Error()
	}
	return fmt.Sprintf("ok id %d version %d swapped %v", r.id, r.version, r.swapped)
}

// entriesOf encodes groups as log entries at h's next indexes: a group of
// one as a plain entry, a larger one as a batch entry.
func (h *fsmHarness) entriesOf(groups [][]command.Command) []Entry {
	var logs []Entry
	for _, g := range groups {
		datas := make([][]byte, len(g))
		for i, c := range g {
			b, err := command.Encode(c)
			require.NoError(h.t, err)
			datas[i] = b
		}
		data := datas[0]
		if len(g) > 1 {
			data = command.EncodeBatch(datas)
		}
		logs = append(logs, Entry{Index: h.next, Command: true, Data: data})
		h.next++
	}
	return logs
}

func flattenResults(out []any) []*Result {
	var res []*Result
	for _, o := range out {
		switch o := o.(type) {
		case *Result:
			res = append(res, o)
		case *BatchResult:
			res = append(res, o.Results...)
		}
	}
	return res
}

// group splits cmds, in order, into log entries: runs of batchable
// commands into batch entries of random sizes, the others alone.
func (run *modelRun) group(cmds []genCmd) [][]command.Command {
	var groups [][]command.Command
	for i := 0; i < len(cmds); {
		g := []command.Command{cmds[i].cmd}
		i++
		if command.Batchable(g[0]) {
			n := run.r.IntN(4)
			for ; n > 0 && i < len(cmds) && command.Batchable(cmds[i].cmd); n-- {
				g = append(g, cmds[i].cmd)
				i++
			}
		}
		groups = append(groups, g)
	}
	return groups
}

func (run *modelRun) checkResults(who string, cmds []genCmd, res []*Result) {
	run.t.Helper()
	if len(res) != len(cmds) {
		run.failf(cmds, "%s: %d results for %d commands", who, len(res), len(cmds))
	}
	for i, c := range cmds {
		got := res[i]
		w := c.want
		if errClass(got.Err) != w.err {
			run.failf(cmds, "%s: step %d %s: got error %v, model says %v", who, c.step, describe(c.cmd), got.Err, w.err)
		}
		if got.Replayed {
			run.failf(cmds, "%s: step %d: replayed", who, c.step)
		}
		if w.err != nil {
			continue
		}
		if got.Version != w.version || got.Swapped != w.swapped || got.TenantID != w.id {
			run.failf(cmds, "%s: step %d %s: got id %d version %d swapped %v, model says id %d version %d swapped %v",
				who, c.step, describe(c.cmd), got.TenantID, got.Version, got.Swapped, w.id, w.version, w.swapped)
		}
	}
}

// restart closes and reopens h's store and machine, then hands it the
// last batch again, which it must skip as replayed, changing nothing.
func (run *modelRun) restart(h *fsmHarness, last []Entry, who string, cmds []genCmd) {
	run.t.Helper()
	h.reopen()
	run.stats["restarts"]++
	run.checkState(who+" after a restart", h, cmds)
	if len(last) == 0 {
		return
	}
	before := h.checksum()
	for _, o := range h.fsm.ApplyBatch(last) {
		if r, ok := o.(*Result); !ok || !r.Replayed {
			run.failf(cmds, "%s: a batch applied before the restart was not skipped: %#v", who, o)
		}
	}
	if after := h.checksum(); after != before {
		run.failf(cmds, "%s: replaying an applied batch changed the store", who)
	}
}

// checkState compares everything h's machine exposes with the model.
func (run *modelRun) checkState(who string, h *fsmHarness, cmds []genCmd) {
	run.t.Helper()
	f, m := h.fsm, run.m
	ts, err := f.ListTenants("", 0)
	require.NoError(run.t, err)
	var gotNames, wantNames []string
	for _, t := range ts {
		gotNames = append(gotNames, t.Name)
	}
	for name := range m.names {
		wantNames = append(wantNames, name)
	}
	slices.Sort(wantNames)
	if !slices.Equal(gotNames, wantNames) {
		run.failf(cmds, "%s: tenants %q, model %q", who, gotNames, wantNames)
	}
	for _, id := range m.liveIDs() {
		mt := m.tenants[id]
		rec, err := f.TenantByID(id)
		if err != nil {
			run.failf(cmds, "%s: tenant %d: %v", who, id, err)
		}
		if rec.Name != mt.name || rec.State != mt.state || rec.Limits != mt.limits {
			run.failf(cmds, "%s: tenant %d is %q %s %+v, model %q %s %+v", who, id, rec.Name, rec.State, rec.Limits, mt.name, mt.state, mt.limits)
		}
		if byName, err := f.LookupTenant(mt.name); err != nil || byName.ID != id {
			run.failf(cmds, "%s: lookup of %q: %v, %v", who, mt.name, byName, err)
		}
		if got := tenantContents(run.t, h.store, id); !mapsEqual(got, mt.data) {
			run.failf(cmds, "%s: tenant %d data\n got   %s\n model %s", who, id, describeData(got), describeData(mt.data))
		}
		u, err := f.Usage(id)
		require.NoError(run.t, err)
		if want := refUsage(mt.data); u != want {
			run.failf(cmds, "%s: tenant %d usage %+v, model %+v", who, id, u, want)
		}
		vi, err := f.TenantVersion(id)
		require.NoError(run.t, err)
		if vi.Version != mt.version || vi.Oldest != mt.oldest() {
			run.failf(cmds, "%s: tenant %d version %d oldest %d, model %d oldest %d", who, id, vi.Version, vi.Oldest, mt.version, mt.oldest())
		}
		if mt.oldest() > 0 {
			run.stats["pruned"]++
		}
		run.checkChanges(who, h, mt, cmds)
	}
	for _, id := range append(slices.Clone(m.gone), m.nextID, m.nextID+7) {
		if _, err := f.TenantByID(id); errClass(err) != ErrTenantNotFound {
			run.failf(cmds, "%s: tenant %d, deleted or never made: %v", who, id, err)
		}
		if got := tenantContents(run.t, h.store, id); len(got) != 0 {
			run.failf(cmds, "%s: tenant %d, deleted or never made, holds %s", who, id, describeData(got))
		}
		u, err := f.Usage(id)
		require.NoError(run.t, err)
		vi, err := f.TenantVersion(id)
		require.NoError(run.t, err)
		if u != (Usage{}) || vi != (VersionInfo{}) {
			run.failf(cmds, "%s: tenant %d, deleted or never made: usage %+v version %+v", who, id, u, vi)
		}
		if _, _, err := f.Changes(id, 0, command.KeyRange{}, 1<<20); errClass(err) != ErrTenantNotFound {
			run.failf(cmds, "%s: changes of tenant %d, deleted or never made: %v", who, id, err)
		}
	}
	for tok, id := range m.tokens {
		rec, err := f.Token(tok)
		if err != nil || rec.TenantID != id {
			run.failf(cmds, "%s: token %q: %v %v, model bound to %d", who, tok, rec, err, id)
		}
	}
	all, err := f.ListTokens(0)
	require.NoError(run.t, err)
	if len(all) != len(m.tokens) {
		run.failf(cmds, "%s: %d tokens, model %d", who, len(all), len(m.tokens))
	}
}

// checkChanges compares what watches of mt from a few versions would get.
func (run *modelRun) checkChanges(who string, h *fsmHarness, mt *refTenant, cmds []genCmd) {
	run.t.Helper()
	r := run.r
	for range 2 {
		after := mt.oldest() + uint64(r.IntN(int(mt.version-mt.oldest())+1))
		switch x := r.IntN(20); {
		case x == 0 && mt.oldest() > 0:
			after = mt.oldest() - 1 - uint64(r.IntN(int(mt.oldest())))
		case x == 1:
			after = mt.version + 1
		}
		kr := run.genRange()
		want, wantUpTo, wantErr := mt.changes(after, kr)
		got, upTo, err := h.fsm.Changes(mt.id, after, kr, 1<<20)
		if errClass(err) != wantErr {
			run.failf(cmds, "%s: changes of tenant %d after %d in [%q,%q): error %v, model %v", who, mt.id, after, kr.Start, kr.End, err, wantErr)
		}
		if wantErr == ErrWatchTooOld {
			run.stats["watch too old"]++
		}
		if wantErr != nil {
			continue
		}
		if gc := fromChanges(got); upTo != wantUpTo || !slices.Equal(gc, want) {
			run.failf(cmds, "%s: changes of tenant %d after %d in [%q,%q), up to %d:\n got   %v\n model %v (up to %d)", who, mt.id, after, kr.Start, kr.End, upTo, gc, want, wantUpTo)
		}
		// Read in small pages, resuming at each page's end, a watch gets
		// the same changes.
		var paged []Change
		for from, pages := after, 0; from < mt.version; pages++ {
			cs, to, err := h.fsm.Changes(mt.id, from, kr, 1+r.IntN(40))
			if err != nil || to <= from || pages > int(mt.version) {
				run.failf(cmds, "%s: paged changes of tenant %d from %d: up to %d, %v", who, mt.id, from, to, err)
			}
			paged = append(paged, cs...)
			from = to
		}
		if gc := fromChanges(paged); !slices.Equal(gc, want) {
			run.failf(cmds, "%s: paged changes of tenant %d after %d:\n got   %v\n model %v", who, mt.id, after, gc, want)
		}
	}
	// The same through a token: refused for a missing token or a locked
	// tenant or another tenant's token, else the same changes.
	tok := fmt.Sprintf("tok%d", r.IntN(run.tokSeq+2))
	after := mt.version - min(mt.version-mt.oldest(), uint64(r.IntN(4)))
	want, _, wantErr := mt.changes(after, command.KeyRange{})
	if _, ok := run.m.tokens[tok]; !ok {
		wantErr = ErrTokenNotFound
	} else if !mt.state.AllowsReads() {
		wantErr = ErrTenantLocked
	} else if owner := run.m.tokens[tok]; owner != 0 && owner != mt.id {
		// Another tenant's token: the history is read through the view of
		// the token's tenant, which refuses this tenant's records.
		wantErr = keyspace.ErrOutsideSpan
	}
	got, _, err := h.fsm.ChangesAs(tok, mt.id, after, command.KeyRange{}, 1<<20)
	if errClass(err) != wantErr || (err == nil && !slices.Equal(fromChanges(got), want)) {
		run.failf(cmds, "%s: changes of tenant %d after %d as %q: %v %v, model %v %v", who, mt.id, after, tok, fromChanges(got), err, want, wantErr)
	}
}

// tenantContents reads tenant id's data, with each key's version, through
// the store's tenant view.
func tenantContents(t *testing.T, st *store.Store, id keyspace.TenantID) map[string]refValue {
	v, err := st.Tenant(id)
	require.NoError(t, err)
	it, err := v.NewIterator(nil, nil, false)
	require.NoError(t, err)
	out := map[string]refValue{}
	for it.Next() {
		out[string(it.Key())] = refValue{val: string(it.Value()), ver: it.Version()}
	}
	require.NoError(t, it.Err())
	require.NoError(t, it.Close())
	return out
}

func mapsEqual(a, b map[string]refValue) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func describeData(d map[string]refValue) string {
	var s []string
	for _, k := range slices.Sorted(maps.Keys(d)) {
		s = append(s, fmt.Sprintf("%q=%q@%d", k, d[k].val, d[k].ver))
	}
	return "{" + strings.Join(s, " ") + "}"
}

// genBatch generates n commands, applying each to the model as it goes, so
// that later commands are drawn from the state earlier ones made.
func (run *modelRun) genBatch(n int) []genCmd {
	out := make([]genCmd, 0, n)
	for range n {
		run.step++
		cmd, bad := run.genCommand()
		want := run.m.apply(cmd, bad)
		run.count(cmd, want)
		out = append(out, genCmd{cmd: cmd, bad: bad, step: run.step, want: want})
	}
	return out
}

func (run *modelRun) count(cmd command.Command, w refResult) {
	switch w.err {
	case ErrConflict:
		run.stats["conflict"]++
	case ErrTxTooOld:
		run.stats["too old"]++
	case ErrQuotaExceeded:
		run.stats["quota"]++
	case ErrTenantReadOnly:
		run.stats["read-only"]++
	case ErrTenantLocked:
		run.stats["locked"]++
	case ErrTenantNotFound:
		run.stats["not found"]++
	case nil:
		if w.swapped {
			run.stats["swapped"]++
		}
		if c, ok := cmd.(*command.TxnCommit); ok && len(c.Ops) > 0 && w.version < run.m.tenants[c.TenantID].version {
			run.stats["dup"]++ // a commit of ops that wrote nothing new
		}
	}
}

// tick advances the model clock and returns a command's At: mostly
// increasing, sometimes a jump past the history window, sometimes a step
// back, sometimes unknown (0).
func (run *modelRun) tick() int64 {
	r := run.r
	run.now += int64(r.IntN(300)) * int64(time.Millisecond)
	if r.IntN(60) == 0 {
		run.now += int64(3+r.IntN(10)) * int64(time.Second)
	}
	switch r.IntN(20) {
	case 0:
		return 0
	case 1:
		return run.now - int64(r.IntN(3000))*int64(time.Millisecond)
	}
	return run.now
}

var modelStates = []keyspace.State{keyspace.StateActive, keyspace.StateReadOnly, keyspace.StateLocked}

func (run *modelRun) genLimits() keyspace.Limits {
	r := run.r
	return keyspace.Limits{
		MaxBytes: []uint64{0, 0, 60, 150, 400}[r.IntN(5)],
		MaxKeys:  []uint64{0, 0, 4, 8, 15}[r.IntN(5)],
	}
}

func (run *modelRun) genName() string { return fmt.Sprintf("t%d", run.r.IntN(10)) }

// target picks a tenant ID and the name a command gives it: mostly a live
// tenant under its name; sometimes a stale or wrong name, a deleted
// tenant, or an ID never handed out.
func (run *modelRun) target() (keyspace.TenantID, string, *refTenant) {
	r, m := run.r, run.m
	ids := m.liveIDs()
	x := r.IntN(100)
	switch {
	case len(ids) > 0 && x < 90:
		t := m.tenants[ids[r.IntN(len(ids))]]
		name := t.name
		if r.IntN(25) == 0 {
			name = t.names[r.IntN(len(t.names))]
			if name == t.name {
				name = run.genName()
			}
		}
		return t.id, name, t
	case len(m.gone) > 0 && x < 95:
		return m.gone[r.IntN(len(m.gone))], run.genName(), nil
	}
	return m.nextID + keyspace.TenantID(r.IntN(3)), run.genName(), nil
}

func (run *modelRun) genKey() []byte { return fmt.Appendf(nil, "k%d", run.r.IntN(12)) }

func (run *modelRun) genValue() []byte {
	r := run.r
	if r.IntN(3) == 0 {
		return binary.LittleEndian.AppendUint64(nil, uint64(r.IntN(7)-3))
	}
	return bytes.Repeat([]byte{byte('a' + r.IntN(3))}, r.IntN(12))
}

// genRange returns a random valid range: a point, a span, or open at
// either end.
func (run *modelRun) genRange() command.KeyRange {
	r := run.r
	if r.IntN(3) == 0 {
		k := run.genKey()
		return command.KeyRange{Start: k, End: append(bytes.Clone(k), 0)}
	}
	a, b := run.genKey(), run.genKey()
	if bytes.Compare(a, b) > 0 {
		a, b = b, a
	}
	switch r.IntN(6) {
	case 0:
		a = nil
	case 1:
		b = nil
	case 2:
		a, b = nil, nil
	}
	if len(b) > 0 && bytes.Compare(a, b) >= 0 {
		b = append(bytes.Clone(a), 0)
	}
	return command.KeyRange{Start: a, End: b}
}

// genOps returns up to n ops; atomic adds the ops only a TxnCommit takes.
func (run *modelRun) genOps(n int, atomic bool, t *refTenant) []command.Op {
	r := run.r
	var ops []command.Op
	for range n {
		switch x := r.IntN(12); {
		case x < 5:
			ops = append(ops, command.Op{Kind: command.OpSet, Key: run.genKey(), Value: run.genValue()})
		case x < 7:
			ops = append(ops, command.Op{Kind: command.OpDelete, Key: run.genKey()})
		case x < 8:
			kr := run.genRange()
			ops = append(ops, command.Op{Kind: command.OpDeleteRange, Key: kr.Start, End: kr.End})
		case !atomic:
			ops = append(ops, command.Op{Kind: command.OpSet, Key: run.genKey(), Value: run.genValue()})
		case x < 11:
			kind := []command.OpKind{command.OpAdd, command.OpMin, command.OpMax}[r.IntN(3)]
			ops = append(ops, command.Op{Kind: kind, Key: run.genKey(), Value: binary.LittleEndian.AppendUint64(nil, uint64(r.IntN(9)-4))})
		default:
			k := run.genKey()
			v := run.genValue()
			if cur, ok := t.dataOf(k); ok && r.IntN(2) == 0 {
				v = []byte(cur)
			}
			ops = append(ops, command.Op{Kind: command.OpCompareAndClear, Key: k, Value: v})
		}
	}
	return ops
}

func (run *modelRun) genCommand() (command.Command, bool) {
	r, m := run.r, run.m
	x := r.IntN(1000)
	switch {
	case x < 30 || len(m.tenants) == 0:
		return &command.CreateTenant{Name: run.genName(), Limits: run.genLimits(), CreatedAt: time.Unix(1700000000, 0)}, false
	case x < 90:
		id, _, _ := run.target()
		c := &command.UpdateTenant{ID: id}
		switch r.IntN(4) {
		case 0:
			c.NewName = ptr(run.genName())
		case 1, 2:
			c.State = ptr(modelStates[r.IntN(len(modelStates))])
		default:
			c.Limits = ptr(run.genLimits())
		}
		if r.IntN(5) == 0 { // mostly back to active, so writes go on
			c.State = ptr(keyspace.StateActive)
		}
		return c, false
	case x < 105:
		id, _, _ := run.target()
		return &command.DeleteTenant{ID: id}, false
	case x < 125:
		id, _, _ := run.target()
		if r.IntN(4) == 0 {
			id = 0
		}
		run.tokSeq++
		return &command.PutToken{Token: command.TokenRecord{ID: fmt.Sprintf("tok%d", r.IntN(run.tokSeq+1)), Hash: tokenHash("s"), TenantID: id}}, false
	case x < 135:
		return &command.DeleteToken{ID: fmt.Sprintf("tok%d", r.IntN(run.tokSeq+1))}, false
	case x < 140:
		return &command.Noop{}, false
	case x < 155:
		return run.genBad(), true
	case x < 185:
		return run.genBoundary(), false
	case x < 500:
		id, name, t := run.target()
		n := 1 + r.IntN(6)
		if r.IntN(15) == 0 {
			n = 0
		}
		return &command.TenantWrite{TenantID: id, TenantName: name, Ops: run.genOps(n, false, t), At: run.tick()}, false
	case x < 830:
		return run.genTxn(), false
	}
	id, name, t := run.target()
	c := &command.CompareAndSwap{TenantID: id, TenantName: name, Key: run.genKey(), At: run.tick()}
	if cur, ok := t.dataOf(c.Key); ok && r.IntN(3) > 0 {
		c.Old = []byte(cur)
		if len(c.Old) == 0 {
			c.Old = nil // an empty value matches a present key's empty value
		}
	} else if r.IntN(2) == 0 {
		c.OldAbsent = true
	} else {
		c.Old = run.genValue()
	}
	if r.IntN(4) == 0 {
		c.NewAbsent = true
	} else {
		c.New = run.genValue()
		if len(c.New) == 0 {
			c.New = nil
		}
	}
	if len(c.Old) == 0 {
		c.Old = nil
	}
	return c, false
}

// genBoundary returns a write that takes a tenant's usage to exactly its
// byte or key limit, or one past it: the edge a quota check can be off by
// one at.
func (run *modelRun) genBoundary() command.Command {
	id, name, t := run.target()
	w := &command.TenantWrite{TenantID: id, TenantName: name, At: run.tick()}
	if t == nil {
		return w
	}
	u := refUsage(t.data)
	over := uint64(run.r.IntN(2))
	k := fmt.Appendf(nil, "b%d", run.r.IntN(3))
	if _, ok := t.data[string(k)]; ok {
		w.Ops = append(w.Ops, command.Op{Kind: command.OpDelete, Key: k})
		u.Bytes -= uint64(len(k) + len(t.data[string(k)].val))
		u.Keys--
	}
	switch {
	case t.limits.MaxBytes > 0 && run.r.IntN(2) == 0 && u.Bytes+uint64(len(k)) <= t.limits.MaxBytes:
		n := t.limits.MaxBytes - u.Bytes - uint64(len(k)) + over
		w.Ops = append(w.Ops, command.Op{Kind: command.OpSet, Key: k, Value: bytes.Repeat([]byte{'q'}, int(n))})
	case t.limits.MaxKeys > 0 && u.Keys < t.limits.MaxKeys:
		for i := u.Keys; i < t.limits.MaxKeys+over; i++ {
			w.Ops = append(w.Ops, command.Op{Kind: command.OpSet, Key: fmt.Appendf(nil, "n%d", i), Value: []byte("v")})
		}
	default:
		w.Ops = append(w.Ops, command.Op{Kind: command.OpSet, Key: k, Value: []byte("v")})
	}
	return w
}

// dataOf returns the value of k in t, if t is live and holds k.
func (t *refTenant) dataOf(k []byte) (string, bool) {
	if t == nil {
		return "", false
	}
	v, ok := t.data[string(k)]
	return v.val, ok
}

// genTxn returns a commit: from a recent read version (sometimes one
// pruned, or ahead), with read ranges, a transaction ID (sometimes reused)
// and ops; or, now and then, the retry of an earlier commit.
func (run *modelRun) genTxn() *command.TxnCommit {
	r := run.r
	if len(run.txns) > 0 && r.IntN(5) == 0 {
		// A retry, as a client whose answer was lost sends: the same
		// commit, maybe with a later read version.
		c := *run.txns[r.IntN(len(run.txns))]
		c.At = run.tick()
		if t := run.m.tenants[c.TenantID]; t != nil && r.IntN(3) == 0 && c.ReadVersion < t.version {
			c.ReadVersion += uint64(1 + r.IntN(int(t.version-c.ReadVersion)))
		}
		return &c
	}
	id, name, t := run.target()
	c := &command.TxnCommit{TenantID: id, TenantName: name, At: run.tick()}
	if t != nil {
		v := t.version
		switch x := r.IntN(20); {
		case x < 12:
			c.ReadVersion = v - min(v, uint64(r.IntN(4)))
		case x < 15:
			c.ReadVersion = uint64(r.IntN(int(v) + 1))
		case x < 18 && t.oldest() > 0:
			c.ReadVersion = t.oldest() - uint64(r.IntN(2))
		case x < 19:
			c.ReadVersion = v + 1
		default:
			c.ReadVersion = v
		}
	}
	for range r.IntN(4) {
		c.Reads = append(c.Reads, run.genRange())
	}
	switch r.IntN(10) {
	case 0, 1, 2:
		run.txnSeq++
		c.TxnID = fmt.Appendf(nil, "tx%d", run.txnSeq)
	case 3, 4:
		c.TxnID = fmt.Appendf(nil, "tx%d", run.txnSeq-r.IntN(run.txnSeq+1))
	}
	n := 1 + r.IntN(6)
	if r.IntN(7) == 0 {
		n = 0
	}
	c.Ops = run.genOps(n, true, t)
	if len(c.TxnID) > 0 {
		run.txns = append(run.txns, c)
	}
	if len(run.txns) > 30 {
		run.txns = run.txns[1:]
	}
	return c
}

// genBad returns a command that fails validation: every replica must refuse
// it alike, before reading any state.
func (run *modelRun) genBad() command.Command {
	id, name, _ := run.target()
	switch run.r.IntN(3) {
	case 0: // an atomic op outside a transaction
		return &command.TenantWrite{TenantID: id, TenantName: name, Ops: []command.Op{{Kind: command.OpAdd, Key: []byte("k1"), Value: make([]byte, 8)}}}
	case 1: // an operand of the wrong size
		return &command.TxnCommit{TenantID: id, TenantName: name, Ops: []command.Op{{Kind: command.OpMax, Key: []byte("k1"), Value: []byte{1, 2, 3}}}}
	}
	return &command.TxnCommit{TenantID: id, TenantName: name, TxnID: bytes.Repeat([]byte{'x'}, 33)}
}
