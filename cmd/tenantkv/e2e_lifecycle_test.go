package main

// End-to-end tests of the tenant lifecycle (docs/OPERATIONS.md, Lifecycle)
// on a three-node cluster of real processes: a short trial that the leader
// ends, seen suspended by every node from its own state; cancel, restore
// and the automatic purge, after which the data is gone on every node and
// the name comes back under a new ID; and a cluster stopped across both
// deadlines, which acts on them when it comes back.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/client"
	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/store"
)

func TestE2ELifecycle(t *testing.T) {
	skipShort(t)
	t.Parallel()
	tc := startTrio(t)
	owner := t
	op := tc.cli(t, tc.nodes...)
	eventually(t, "cluster format 4", failoverTimeout, func() error {
		if f := op.status().Format; f < 4 {
			return fmt.Errorf("cluster format %d", f)
		}
		return nil
	})

	t.Run("trial expires on every node", func(t *testing.T) {
		op := tc.cli(t, tc.nodes...)
		out := op.ok("tenant", "create", "tr", "--trial", "2s")
		if !strings.HasPrefix(out, "created tenant tr (id ") || !strings.Contains(out, "): trial until ") {
			t.Fatalf("tenant create --trial: %q", out)
		}
		op.ok("--tenant", "tr", "put", "k", "v")
		tok := strings.TrimSpace(op.ok("tenant", "token", "tr"))
		if tj := op.showJSON("tr"); tj.State != "trial" || tj.TrialEnds == nil || tj.PurgeAt != nil {
			t.Fatalf("a new trial tenant: %+v", tj)
		}
		if out := op.ok("tenant", "list", "--state", "trial"); !strings.Contains(out, "tr ") || !strings.Contains(out, "trial_ends ") {
			t.Errorf("tenant list --state trial:\n%s", out)
		}
		for _, n := range tc.nodes {
			waitOwnState(t, tc.cli(t, n), tok, "tr", "suspended", n)
		}
		for _, n := range tc.nodes {
			c := tc.cli(t, n)
			refused(t, c.as(tok, "put", "k", "w"), n, "tenantkv: tenant is read-only")
			if r := c.as(tok, "get", "k"); r.code != 0 || r.stdout != "v\n" {
				t.Errorf("a suspended tenant reads through %s: %v", n.name, r)
			}
		}
		if out := op.ok("tenant", "activate", "tr"); out != "activated tenant tr: state active\n" {
			t.Errorf("tenant activate: %q", out)
		}
		op.ok("--tenant", "tr", "put", "k2", "v2")
		op.fails(1, "tenantkv: tenant state transition not allowed: tenant \"tr\" is active: cannot activate; allowed: suspend, cancel", "tenant", "activate", "tr")
	})

	t.Run("cancel, restore, purge", func(t *testing.T) {
		op := tc.cli(t, tc.nodes...)
		op.ok("tenant", "create", "cx")
		op.ok("--tenant", "cx", "put", "k", "v")
		firstID := op.showJSON("cx").ID
		tok := strings.TrimSpace(op.ok("tenant", "token", "cx"))

		if out := op.ok("tenant", "cancel", "cx", "--retention", "1h"); !strings.HasPrefix(out, "cancelled tenant cx: purge_at ") {
			t.Errorf("tenant cancel: %q", out)
		}
		if tj := op.showJSON("cx"); tj.State != "cancelled" || tj.PurgeAt == nil || time.Until(*tj.PurgeAt) < 50*time.Minute {
			t.Errorf("a cancelled tenant: %+v", tj)
		}
		// Its token gets what a token that never existed gets.
		bogus := "tkv_0123456789abcdef_" + strings.Repeat("x", 43)
		for _, n := range tc.nodes {
			c := tc.cli(t, n)
			got, want := c.as(tok, "get", "k"), c.as(bogus, "get", "k")
			if got.code != 1 || got.stderr != want.stderr || got.code != want.code {
				t.Errorf("a cancelled tenant's token through %s: %v; a bogus token: %v", n.name, got, want)
			}
			refused(t, c.run("", "--tenant", "cx", "get", "k"), n, "tenantkv: tenant is locked")
			refused(t, c.run("", "--tenant", "cx", "put", "k", "w"), n, "tenantkv: tenant is locked")
		}
		if r := op.run("", "tenant", "activate", "cx"); r.code != 1 || !strings.Contains(r.stderr, "allowed: restore") {
			t.Errorf("tenant activate of a cancelled tenant: %v", r)
		}
		if out := op.ok("tenant", "restore", "cx"); out != "restored tenant cx: state suspended\n" {
			t.Errorf("tenant restore: %q", out)
		}
		for _, n := range tc.nodes {
			eventually(t, "the restored tenant's token on "+n.name, failoverTimeout, func() error {
				if r := tc.cli(t, n).as(tok, "get", "k"); r.code != 0 || r.stdout != "v\n" {
					return errors.New(r.String())
				}
				return nil
			})
		}

		// A short retention: the leader purges it, and every node loses it.
		op.ok("tenant", "cancel", "cx", "--retention", "2s")
		for _, n := range tc.nodes {
			waitGone(t, tc, n, "cx")
		}
		op.fails(1, "tenantkv: tenant not found", "tenant", "show", "cx")
		op.ok("tenant", "create", "cx")
		if id := op.showJSON("cx").ID; id <= firstID {
			t.Errorf("re-created cx has ID %d, the purged one had %d", id, firstID)
		}
		if out := op.ok("--tenant", "cx", "scan"); out != "" {
			t.Errorf("the re-created tenant holds %q", out)
		}
	})

	t.Run("audit trail", func(t *testing.T) {
		op := tc.cli(t, tc.nodes...)
		op.ok("tenant", "create", "au", "--trial", "720h")
		op.ok("tenant", "create", "other")
		op.ok("tenant", "set", "au", "--label", "plan=pro")
		var made newTokenJSON
		if err := json.Unmarshal([]byte(op.ok("tenant", "token", "au", "--json")), &made); err != nil {
			t.Fatal(err)
		}
		spare := strings.TrimSpace(op.ok("tenant", "token", "au"))
		spareID, err := client.TokenID(spare)
		if err != nil {
			t.Fatal(err)
		}
		op.ok("tenant", "revoke", spareID)
		op.ok("tenant", "suspend", "au")
		op.ok("tenant", "activate", "au")
		op.ok("tenant", "export", "au")

		var evs []auditEventJSON
		if err := json.Unmarshal([]byte(op.ok("tenant", "audit", "au", "--json")), &evs); err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for i, e := range evs {
			kinds = append(kinds, e.Kind)
			if e.Seq != uint64(i+1) || e.Actor == "" || len(e.Hash) != 64 || (i > 0 && e.Prev != evs[i-1].Hash) {
				t.Errorf("event %d: %+v", i+1, e)
			}
		}
		want := []string{"create", "labels", "token-minted", "token-minted", "token-revoked", "suspend", "activate", "export"}
		if !slices.Equal(kinds, want) {
			t.Fatalf("tenant audit au: kinds %q, want %q", kinds, want)
		}
		if !strings.Contains(evs[2].After, made.ID) || strings.Contains(op.ok("tenant", "audit", "au"), made.Token) {
			t.Errorf("a minted token is named by its ID, never its secret: %+v", evs[2])
		}
		if out := op.ok("tenant", "audit", "au", "--limit", "2"); strings.Count(out, "\n") != 3 || !strings.HasPrefix(out, "SEQ") {
			t.Errorf("tenant audit --limit 2:\n%s", out)
		}
		for _, n := range tc.nodes {
			if out := tc.cli(t, n).ok("tenant", "audit", "au", "--verify"); out != "audit trail of au: 8 events (1 to 8) verified\n" {
				t.Errorf("tenant audit --verify through %s: %q", n.name, out)
			}
		}
		// The tenant's token reads its own trail, and another tenant's
		// exactly as one that does not exist.
		c := tc.cli(t, tc.nodes...)
		if r := c.as(made.Token, "tenant", "audit", "au"); r.code != 0 || strings.Count(r.stdout, "\n") != 9 {
			t.Errorf("the tenant's own trail with its token: %v", r)
		}
		other, missing := c.as(made.Token, "tenant", "audit", "other"), c.as(made.Token, "tenant", "audit", "no-such-tenant")
		if other.code != 1 || other != missing {
			t.Errorf("another tenant's trail: %v; a missing tenant's: %v", other, missing)
		}

		// One stored event changed on disk, on every node: --verify finds it.
		// A graceful stop: the store's unsynced tail (the raft log is the
		// durable record, replayed after a kill) is written out.
		id := op.showJSON("au").ID
		for _, n := range tc.nodes {
			n.graceful(t)
		}
		for _, n := range tc.nodes {
			tamperAuditEvent(t, filepath.Join(n.dataDir, "store"), keyspace.TenantID(id), 3)
		}
		tc.restartAll(t, owner)
		op = tc.cli(t, tc.nodes...)
		r := op.run("", "tenant", "audit", "au", "--verify")
		if r.code != 1 || r.stdout != "" || !strings.HasPrefix(r.stderr, "tenantkv: audit trail does not verify: tenant au, first bad event 3: event 3 was changed") {
			t.Errorf("tenant audit --verify of a changed trail: %v", r)
		}
	})

	t.Run("a cluster down across the deadlines", func(t *testing.T) {
		op := tc.cli(t, tc.nodes...)
		op.ok("tenant", "create", "dn", "--trial", "4s")
		op.ok("--tenant", "dn", "put", "k", "v")
		tok := strings.TrimSpace(op.ok("tenant", "token", "dn"))
		op.ok("tenant", "create", "gone")
		op.ok("--tenant", "gone", "put", "k", "v")
		op.ok("tenant", "cancel", "gone", "--retention", "4s")
		ends := *op.showJSON("dn").TrialEnds
		purge := *op.showJSON("gone").PurgeAt
		for _, n := range tc.nodes {
			n.kill()
		}
		// The cluster is down when both deadlines pass.
		time.Sleep(time.Until(later(ends, purge)) + 500*time.Millisecond)
		tc.restartAll(t, owner)
		for _, n := range tc.nodes {
			waitOwnState(t, tc.cli(t, n), tok, "dn", "suspended", n)
			waitGone(t, tc, n, "gone")
		}
		c := tc.cli(t, tc.nodes...)
		if r := c.as(tok, "get", "k"); r.code != 0 || r.stdout != "v\n" {
			t.Errorf("the expired trial keeps its data: %v", r)
		}
	})
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// waitOwnState waits until node n, asked alone with the tenant's token,
// reports from its own state that the tenant is in state want.
func waitOwnState(t *testing.T, c *clusterCLI, tok, name, want string, n *nodeProc) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s %s on %s", name, want, n.name), failoverTimeout, func() error {
		r := c.as(tok, "tenant", "show", name, "--json")
		if r.code != 0 {
			return errors.New(r.String())
		}
		var tj tenantJSON
		if err := json.Unmarshal([]byte(r.stdout), &tj); err != nil {
			return err
		}
		if tj.State != want {
			return fmt.Errorf("state %s", tj.State)
		}
		return nil
	})
}

// waitGone waits until node n, read alone and stale (from its own state)
// with the operator token, no longer has tenant name.
func waitGone(t *testing.T, tc *trio, n *nodeProc, name string) {
	t.Helper()
	tok, err := os.ReadFile(tc.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, fmt.Sprintf("%s purged on %s", name, n.name), failoverTimeout, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		db, err := client.Open(ctx, []string{n.addr}, &client.Options{Token: strings.TrimSpace(string(tok))})
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = db.Tenant(name).WithStaleReads().Get(ctx, []byte("k"))
		if !errors.Is(err, client.ErrTenantNotFound) {
			return fmt.Errorf("a stale read of %s/k: %v", name, err)
		}
		return nil
	})
}

// restartAll starts every (stopped) node of the trio again on its own
// directory and addresses, all before waiting for any: a node prints its
// ready line only once it knows a leader, which needs a quorum.
//
// The processes belong to owner, the test that started the trio: they
// outlive the subtest t that restarts them.
func (tc *trio) restartAll(t, owner *testing.T) {
	t.Helper()
	procs := make([]*nodeProc, len(tc.nodes))
	for i, old := range tc.nodes {
		old.kill()
		line := strings.TrimPrefix(old.cmd.Args[len(old.cmd.Args)-1], "exec ")
		procs[i] = launch(owner, old.name, old.cmd.Dir, old.cmd.Env, line)
		procs[i].dataDir = old.dataDir
	}
	for i, p := range procs {
		if err := p.waitReady(t.Context()); err != nil {
			t.Fatalf("restart %s: %v", p.name, err)
		}
		if p.id != tc.nodes[i].id || p.addr != tc.nodes[i].addr {
			t.Fatalf("restarted %s is %s on %s", p.name, p.id, p.addr)
		}
		tc.nodes[i] = p
	}
}

// tamperAuditEvent changes event seq of tenant id's audit trail in the
// stopped node's store at dir, as someone with access to the disk could:
// one character of the token ID it names.
func tamperAuditEvent(t *testing.T, dir string, id keyspace.TenantID, seq uint64) {
	t.Helper()
	st, err := store.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	applied, err := st.AppliedIndex()
	if err != nil {
		t.Fatal(err)
	}
	b := st.NewBatch()
	m, err := b.TenantMeta(id)
	if err != nil {
		t.Fatal(err)
	}
	k := keyspace.AuditEventKey(id, seq)
	v, err := m.Get(k)
	if err != nil {
		t.Fatalf("tenant %d event %d in %s: %v", id, seq, dir, err)
	}
	i := bytes.Index(v, []byte("id="))
	if i < 0 || i+3 >= len(v) {
		t.Fatalf("event %d: %q holds no token ID to change", seq, v)
	}
	v = bytes.Clone(v)
	v[i+3] ^= 1 // a hex digit of the token ID, still a valid string
	if err := m.Set(k, v); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(applied, true); err != nil {
		t.Fatal(err)
	}
}
