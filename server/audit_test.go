package server_test

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/client"
	"github.com/tenantkv/tenantkv/internal/wire"
)

// waitFormat4 polls until the node's cluster format reached 4 (the leader
// raises it a few seconds after it starts).
func waitFormat4(t *testing.T, c *rawConn) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := c.call(&wire.Request{Op: wire.OpClusterStatus})
		require.Equal(t, wire.CodeOK, r.Code, r.Msg)
		if r.Cluster.Format >= 4 {
			return
		}
		require.False(t, time.Now().After(deadline), "the cluster format never reached 4")
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAuditOverTheWire: operator changes land in the tenant's trail with
// the operator token's ID; the operator and the tenant's own token read
// it and verify it; a tenant token asking for another tenant's trail gets
// exactly what it gets for a tenant that does not exist.
func TestAuditOverTheWire(t *testing.T) {
	s, op := startNode(t)
	c := login(t, s.Addr(), op)
	waitFormat4(t, c)
	hello := c.call(&wire.Request{Op: wire.OpPing})
	require.Equal(t, wire.CodeOK, hello.Code)

	for _, n := range []string{"alpha", "beta"} {
		r := c.call(&wire.Request{Op: wire.OpCreateTenant, Name: n, Config: &wire.TenantConfig{Labels: map[string]string{"plan": "free"}}})
		require.Equal(t, wire.CodeOK, r.Code, r.Msg)
	}
	r := c.call(&wire.Request{Op: wire.OpUpdateTenant, Name: "alpha", State: "read-only"})
	require.Equal(t, wire.CodeOK, r.Code, r.Msg)
	tok := c.call(&wire.Request{Op: wire.OpNewToken, Name: "alpha"})
	require.Equal(t, wire.CodeOK, tok.Code, tok.Msg)
	r = c.call(&wire.Request{Op: wire.OpTenantLifecycle, Name: "alpha", State: "activate"})
	require.Equal(t, wire.CodeOK, r.Code, r.Msg)
	r = c.call(&wire.Request{Op: wire.OpExportTenant, Name: "alpha"})
	require.Equal(t, wire.CodeOK, r.Code, r.Msg)

	audit := c.call(&wire.Request{Op: wire.OpTenantAudit, Name: "alpha"})
	require.Equal(t, wire.CodeOK, audit.Code, audit.Msg)
	var kinds []string
	for _, e := range audit.Audit {
		kinds = append(kinds, e.Kind)
		require.NotEmpty(t, e.Actor)
		require.NotEqual(t, "system", e.Actor, "an operator made every change: its token ID is the actor")
		require.Len(t, e.Hash, 32)
	}
	require.Equal(t, []string{"create", "state", "token-minted", "activate", "export"}, kinds)
	require.Equal(t, "active", audit.Audit[1].Before)
	require.Equal(t, "suspended", audit.Audit[1].After)
	require.Contains(t, audit.Audit[2].After, "id="+tok.TokenID)
	require.NotContains(t, audit.Audit[2].After, tok.Token, "never the secret")

	page := c.call(&wire.Request{Op: wire.OpTenantAudit, Name: "alpha", Limit: 2, ReadVersion: 1})
	require.Equal(t, wire.CodeOK, page.Code, page.Msg)
	require.True(t, page.More)
	require.Equal(t, []uint64{2, 3}, []uint64{page.Audit[0].Seq, page.Audit[1].Seq})
	since := c.call(&wire.Request{Op: wire.OpTenantAudit, Name: "alpha", Cursor: audit.Audit[3].At.Format(time.RFC3339Nano)})
	require.Equal(t, wire.CodeOK, since.Code, since.Msg)
	require.Equal(t, uint64(4), since.Audit[0].Seq)
	verify := c.call(&wire.Request{Op: wire.OpTenantAudit, Name: "alpha", State: "verify"})
	require.Equal(t, wire.CodeOK, verify.Code, verify.Msg)
	require.True(t, verify.Verdict.OK, "%+v", verify.Verdict)
	require.Equal(t, uint64(5), verify.Verdict.Events)

	// The tenant's own token reads its trail...
	tc := login(t, s.Addr(), tok.Token)
	own := tc.call(&wire.Request{Op: wire.OpTenantAudit})
	require.Equal(t, wire.CodeOK, own.Code, own.Msg)
	require.Len(t, own.Audit, 5)
	own = tc.call(&wire.Request{Op: wire.OpTenantAudit, Name: "alpha", State: "verify"})
	require.Equal(t, wire.CodeOK, own.Code, own.Msg)
	require.True(t, own.Verdict.OK)
	// ...and another tenant's exactly as a missing one's.
	for _, req := range []wire.Request{
		{Op: wire.OpTenantAudit, Name: "beta"},
		{Op: wire.OpTenantAudit, Name: "beta", State: "verify"},
	} {
		other := tc.call(&req)
		missingReq := req
		missingReq.Name = "no-such-tenant"
		missing := tc.call(&missingReq)
		require.Equal(t, wire.CodePermissionDenied, other.Code)
		require.Equal(t, missing.Code, other.Code)
		require.Equal(t, missing.Msg, other.Msg)
		require.Nil(t, other.Audit)
		require.Nil(t, other.Verdict)
	}
	// Bad requests are refused.
	require.Equal(t, wire.CodeBadRequest, c.call(&wire.Request{Op: wire.OpTenantAudit, Name: "alpha", State: "bogus"}).Code)
	require.Equal(t, wire.CodeBadRequest, c.call(&wire.Request{Op: wire.OpTenantAudit, Name: "alpha", Cursor: "yesterday"}).Code)
	require.Equal(t, wire.CodeTenantNotFound, c.call(&wire.Request{Op: wire.OpTenantAudit, Name: "no-such-tenant"}).Code)
}

// TestAuditTravelsWithExport: an export file carries the tenant's trail,
// and an import into a new tenant records it, each event as
// "imported:KIND" with its own time and actor, then an "import" event
// naming the source; the new trail verifies.
func TestAuditTravelsWithExport(t *testing.T) {
	s, op := startNode(t)
	waitFormat4(t, login(t, s.Addr(), op))
	db, err := client.Open(t.Context(), []string{s.Addr()}, &client.Options{Token: op})
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	ctx := t.Context()
	_, err = db.CreateTenant(ctx, "shop", &client.TenantConfig{Labels: map[string]string{"plan": "pro"}})
	require.NoError(t, err)
	require.NoError(t, db.Tenant("shop").Set(ctx, []byte("k"), []byte("v")))
	_, err = db.SuspendTenant(ctx, "shop")
	require.NoError(t, err)
	src, err := db.TenantAudit(ctx, "shop", nil)
	require.NoError(t, err)
	require.Len(t, src, 2) // create, suspend

	var file bytes.Buffer
	sum, err := db.ExportTenant(ctx, "shop", &file, nil)
	require.NoError(t, err)
	require.Len(t, sum.Header.Audit, 3, "the trail when the export began, its own export event included")
	_, err = db.ImportTenant(ctx, "copy", bytes.NewReader(file.Bytes()), nil)
	require.NoError(t, err)

	evs, err := db.TenantAudit(ctx, "copy", nil)
	require.NoError(t, err)
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
	}
	require.Equal(t, []string{"create", "imported:create", "imported:suspend", "imported:export", "import", "state"}, kinds)
	require.Equal(t, src[1].Actor, evs[2].Actor, "an imported event keeps its actor")
	require.True(t, src[1].At.Equal(evs[2].At), "and its time")
	require.Equal(t, "state=active", evs[2].Before)
	require.Contains(t, evs[4].After, "from an export of tenant shop")
	require.Contains(t, evs[4].After, hex.EncodeToString(sum.Header.Audit[2].Hash), "the source chain's last hash")
	v, err := db.VerifyTenantAudit(ctx, "copy")
	require.NoError(t, err)
	require.True(t, v.OK, "%+v", v)

	// The source's trail gained the export.
	after, err := db.TenantAudit(ctx, "shop", nil)
	require.NoError(t, err)
	require.Equal(t, "export", after[len(after)-1].Kind)

	// Into an existing empty tenant: after its own history, the file's
	// events and the import.
	_, err = db.CreateTenant(ctx, "spare", nil)
	require.NoError(t, err)
	_, err = db.ImportTenant(ctx, "spare", bytes.NewReader(file.Bytes()), nil)
	require.NoError(t, err)
	evs, err = db.TenantAudit(ctx, "spare", nil)
	require.NoError(t, err)
	kinds = kinds[:0]
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
	}
	require.Equal(t, []string{"create", "imported:create", "imported:suspend", "imported:export", "import"}, kinds)
	require.Contains(t, evs[4].After, "from an export of tenant shop")
	v, err = db.VerifyTenantAudit(ctx, "spare")
	require.NoError(t, err)
	require.True(t, v.OK, "%+v", v)
}
