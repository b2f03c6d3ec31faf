package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// waitTenant polls the tenant name until ok accepts the answer, for at
// most 20 s (the leader's lifecycle loop runs every 500 ms).
func waitTenant(t *testing.T, c *rawConn, name, what string, ok func(*wire.Response) bool) *wire.Response {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := c.call(&wire.Request{Op: wire.OpGetTenant, Name: name})
		if ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: tenant %s: last answer %+v", what, name, r)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// helloAnswer is what a fresh connection hears when it says hello with tok.
func helloAnswer(t *testing.T, addr, tok string) (wire.Code, string) {
	t.Helper()
	r := dialRaw(t, addr).call(&wire.Request{Op: wire.OpHello, Version: wire.ProtocolVersion, Token: tok})
	return r.Code, r.Msg
}

// TestLifecycleOverTheWire runs a tenant through the lifecycle on a real
// node: a short trial that the leader ends, activation, cancellation (its
// tokens refused exactly as a revoked one, its data kept), refused
// transitions that name the allowed ones, restore, and the automatic purge
// after which the name comes back with a new ID and no data.
func TestLifecycleOverTheWire(t *testing.T) {
	s, op := startNode(t)
	c := login(t, s.Addr(), op)

	// The lifecycle needs cluster format 4, which the leader raises within
	// a few seconds of starting; until then a trial is refused and nothing
	// is created.
	var created *wire.Response
	deadline := time.Now().Add(20 * time.Second)
	for {
		created = c.call(&wire.Request{Op: wire.OpCreateTenant, Name: "tr", Config: &wire.TenantConfig{Trial: time.Second}})
		if created.Code == wire.CodeOK {
			break
		}
		require.Equal(t, wire.CodeInvalidArgument, created.Code, created.Msg)
		require.Contains(t, created.Msg, "cluster format")
		require.False(t, time.Now().After(deadline), "the cluster format never reached 4")
		time.Sleep(100 * time.Millisecond)
	}
	require.Equal(t, "trial", created.Tenant.State)
	require.False(t, created.Tenant.TrialEnds.IsZero())
	require.True(t, created.Tenant.PurgeAt.IsZero())
	firstID := created.Tenant.ID
	require.Equal(t, wire.CodeOK, c.call(&wire.Request{Op: wire.OpSet, Tenant: "tr", Key: []byte("k"), Value: []byte("v")}).Code, "a trial writes")
	tok := c.call(&wire.Request{Op: wire.OpNewToken, Name: "tr"})
	require.Equal(t, wire.CodeOK, tok.Code, tok.Msg)

	// The trial ends: the leader suspends the tenant.
	r := waitTenant(t, c, "tr", "trial expiry", func(r *wire.Response) bool {
		return r.Code == wire.CodeOK && r.Tenant.State == "suspended"
	})
	require.True(t, r.Tenant.TrialEnds.IsZero())
	require.Equal(t, wire.CodeTenantReadOnly, c.call(&wire.Request{Op: wire.OpSet, Tenant: "tr", Key: []byte("k"), Value: []byte("w")}).Code)
	require.Equal(t, []byte("v"), c.call(&wire.Request{Op: wire.OpGet, Tenant: "tr", Key: []byte("k")}).Value)

	act := func(action string, retention time.Duration) *wire.Response {
		return c.call(&wire.Request{Op: wire.OpTenantLifecycle, Name: "tr", State: action, TTL: retention})
	}
	r = act("activate", 0)
	require.Equal(t, wire.CodeOK, r.Code, r.Msg)
	require.Equal(t, "active", r.Tenant.State)
	r = act("activate", 0)
	require.Equal(t, wire.CodeInvalidArgument, r.Code)
	require.Contains(t, r.Msg, "allowed: suspend, cancel")

	// Cancelled: the tenant's token is refused like a revoked one, on an
	// open connection and at hello; the operator's reads and writes too.
	tc := login(t, s.Addr(), tok.Token)
	require.Equal(t, []byte("v"), tc.call(&wire.Request{Op: wire.OpGet, Key: []byte("k")}).Value)
	r = act("cancel", time.Hour)
	require.Equal(t, wire.CodeOK, r.Code, r.Msg)
	require.Equal(t, "cancelled", r.Tenant.State)
	require.WithinDuration(t, time.Now().Add(time.Hour), r.Tenant.PurgeAt, time.Minute)
	got := tc.call(&wire.Request{Op: wire.OpGet, Key: []byte("k")})
	require.Equal(t, wire.CodePermissionDenied, got.Code)
	require.Equal(t, "permission denied", got.Msg)
	code, msg := helloAnswer(t, s.Addr(), tok.Token)
	badCode, badMsg := helloAnswer(t, s.Addr(), "tkv_0123456789abcdef_nope")
	require.Equal(t, badCode, code, "a cancelled tenant's token gets what a bad token gets")
	require.Equal(t, badMsg, msg)
	require.Equal(t, wire.CodeTenantLocked, c.call(&wire.Request{Op: wire.OpGet, Tenant: "tr", Key: []byte("k")}).Code)
	require.Equal(t, wire.CodeTenantLocked, c.call(&wire.Request{Op: wire.OpSet, Tenant: "tr", Key: []byte("k"), Value: []byte("w")}).Code)
	r = act("activate", 0)
	require.Equal(t, wire.CodeInvalidArgument, r.Code)
	require.Contains(t, r.Msg, "allowed: restore")
	list := c.call(&wire.Request{Op: wire.OpListTenants, State: "cancelled"})
	require.Equal(t, wire.CodeOK, list.Code, list.Msg)
	require.Len(t, list.Tenants, 1)
	require.Equal(t, "tr", list.Tenants[0].Name)

	// Restored: suspended, with its data and its token.
	r = act("restore", 0)
	require.Equal(t, wire.CodeOK, r.Code, r.Msg)
	require.Equal(t, "suspended", r.Tenant.State)
	require.True(t, r.Tenant.PurgeAt.IsZero())
	tc = login(t, s.Addr(), tok.Token)
	require.Equal(t, []byte("v"), tc.call(&wire.Request{Op: wire.OpGet, Key: []byte("k")}).Value)

	// Cancelled with a short retention: the leader purges it.
	r = act("cancel", time.Second)
	require.Equal(t, wire.CodeOK, r.Code, r.Msg)
	waitTenant(t, c, "tr", "purge", func(r *wire.Response) bool { return r.Code == wire.CodeTenantNotFound })
	code, _ = helloAnswer(t, s.Addr(), tok.Token)
	require.Equal(t, wire.CodePermissionDenied, code, "the purge revoked the token")
	again := c.call(&wire.Request{Op: wire.OpCreateTenant, Name: "tr"})
	require.Equal(t, wire.CodeOK, again.Code, again.Msg)
	require.Greater(t, again.Tenant.ID, firstID, "a new ID")
	require.Equal(t, "active", again.Tenant.State)
	require.Equal(t, wire.CodeNotFound, c.call(&wire.Request{Op: wire.OpGet, Tenant: "tr", Key: []byte("k")}).Code, "no data of the old tenant")

	// Retention 0 purges at once; a bad action or retention is refused.
	r = act("cancel", 0)
	require.Equal(t, wire.CodeOK, r.Code, r.Msg)
	require.Nil(t, r.Tenant)
	require.Equal(t, wire.CodeTenantNotFound, c.call(&wire.Request{Op: wire.OpGetTenant, Name: "tr"}).Code)
	require.Equal(t, wire.CodeOK, c.call(&wire.Request{Op: wire.OpCreateTenant, Name: "tr"}).Code)
	r = act("expire", 0)
	require.Equal(t, wire.CodeInvalidArgument, r.Code, "the clock's actions are not the operator's")
	r = act("suspend", time.Hour)
	require.Equal(t, wire.CodeBadRequest, r.Code)
	require.True(t, strings.Contains(r.Msg, "retention"), r.Msg)
}
