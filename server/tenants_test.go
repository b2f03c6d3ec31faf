package server_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/server"
)

func u64(v uint64) *uint64 { return &v }

func TestQuotasAreExact(t *testing.T) {
	s, op := startNode(t)
	c := login(t, s.Addr(), op)
	resp := c.call(&wire.Request{Op: wire.OpCreateTenant, Name: "q", Config: &wire.TenantConfig{MaxKeys: u64(3), MaxBytes: u64(20)}})
	require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	set := func(k, v string) wire.Code {
		return c.call(&wire.Request{Op: wire.OpSet, Tenant: "q", Key: []byte(k), Value: []byte(v)}).Code
	}
	usage := func() wire.Usage {
		r := c.call(&wire.Request{Op: wire.OpGetTenant, Name: "q"})
		require.Equal(t, wire.CodeOK, r.Code, r.Msg)
		return r.Tenant.Usage
	}
	require.Equal(t, wire.CodeOK, set("a", "1234")) // 5 bytes
	require.Equal(t, wire.CodeOK, set("b", "1234")) // 10
	require.Equal(t, wire.Usage{LogicalBytes: 10, Keys: 2}, pick(usage()))
	require.Equal(t, wire.CodeOK, set("a", "123456789")) // overwrite: 15
	require.Equal(t, wire.Usage{LogicalBytes: 15, Keys: 2}, pick(usage()))
	require.Equal(t, wire.CodeQuotaExceeded, set("c", "123456"), "21 bytes > 20")
	require.Equal(t, wire.CodeOK, set("c", "1234"), "exactly 20 bytes fits")
	require.Equal(t, wire.Usage{LogicalBytes: 20, Keys: 3}, pick(usage()))
	require.Equal(t, wire.CodeQuotaExceeded, set("d", ""), "a fourth key")
	// Deletes are always allowed and free room.
	require.Equal(t, wire.CodeOK, c.call(&wire.Request{Op: wire.OpDelete, Tenant: "q", Key: []byte("c")}).Code)
	require.Equal(t, wire.Usage{LogicalBytes: 15, Keys: 2}, pick(usage()))
	require.Equal(t, wire.CodeOK, set("d", ""))
	// A batch is refused as a whole.
	resp = c.call(&wire.Request{Op: wire.OpBatch, Tenant: "q", Muts: []wire.Mutation{
		{Kind: wire.MutDelete, Key: []byte("d")},
		{Kind: wire.MutSet, Key: []byte("e"), Value: []byte("1")},
		{Kind: wire.MutSet, Key: []byte("f"), Value: []byte("1")},
	}})
	require.Equal(t, wire.CodeQuotaExceeded, resp.Code)
	require.Equal(t, wire.CodeOK, c.call(&wire.Request{Op: wire.OpGet, Tenant: "q", Key: []byte("d")}).Code, "refused batch left d in place")
	// Set-then-delete in one batch counts once; a range clear frees all.
	resp = c.call(&wire.Request{Op: wire.OpBatch, Tenant: "q", Muts: []wire.Mutation{
		{Kind: wire.MutSet, Key: []byte("x"), Value: []byte("1")},
		{Kind: wire.MutDeleteRange, Key: []byte("a"), End: []byte("z")},
		{Kind: wire.MutSet, Key: []byte("y"), Value: []byte("12")},
	}})
	require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	require.Equal(t, wire.Usage{LogicalBytes: 3, Keys: 1}, pick(usage()))
}

func pick(u wire.Usage) wire.Usage { return wire.Usage{LogicalBytes: u.LogicalBytes, Keys: u.Keys} }

func TestTenantStates(t *testing.T) {
	s, op := startNode(t)
	c := login(t, s.Addr(), op)
	require.Equal(t, wire.CodeOK, c.call(&wire.Request{Op: wire.OpCreateTenant, Name: "st"}).Code)
	require.Equal(t, wire.CodeOK, c.call(&wire.Request{Op: wire.OpSet, Tenant: "st", Key: []byte("k"), Value: []byte("v")}).Code)
	setState := func(st, want string) {
		r := c.call(&wire.Request{Op: wire.OpUpdateTenant, Name: "st", State: st})
		require.Equal(t, wire.CodeOK, r.Code, r.Msg)
		require.Equal(t, want, r.Tenant.State)
	}
	setState("read-only", "suspended") // the old name of suspended
	require.Equal(t, wire.CodeTenantReadOnly, c.call(&wire.Request{Op: wire.OpSet, Tenant: "st", Key: []byte("k"), Value: []byte("w")}).Code)
	require.Equal(t, []byte("v"), c.call(&wire.Request{Op: wire.OpGet, Tenant: "st", Key: []byte("k")}).Value)
	setState("locked", "locked")
	require.Equal(t, wire.CodeTenantLocked, c.call(&wire.Request{Op: wire.OpGet, Tenant: "st", Key: []byte("k")}).Code)
	require.Equal(t, wire.CodeTenantLocked, c.call(&wire.Request{Op: wire.OpDelete, Tenant: "st", Key: []byte("k")}).Code)
	setState("active", "active")
	require.Equal(t, wire.CodeOK, c.call(&wire.Request{Op: wire.OpDelete, Tenant: "st", Key: []byte("k")}).Code)
	// Rename keeps the data (the prefix never changes).
	require.Equal(t, wire.CodeOK, c.call(&wire.Request{Op: wire.OpSet, Tenant: "st", Key: []byte("k2"), Value: []byte("v2")}).Code)
	r := c.call(&wire.Request{Op: wire.OpUpdateTenant, Name: "st", NewName: "renamed"})
	require.Equal(t, wire.CodeOK, r.Code, r.Msg)
	require.Equal(t, []byte("v2"), c.call(&wire.Request{Op: wire.OpGet, Tenant: "renamed", Key: []byte("k2")}).Value)
	require.Equal(t, wire.CodeTenantNotFound, c.call(&wire.Request{Op: wire.OpGet, Tenant: "st", Key: []byte("k2")}).Code)
}

func TestRateLimitAndMetrics(t *testing.T) {
	s, op := startNode(t)
	c := login(t, s.Addr(), op)
	require.Equal(t, wire.CodeOK, c.call(&wire.Request{Op: wire.OpCreateTenant, Name: "slow", Config: &wire.TenantConfig{OpsPerSec: u64(1), Burst: u64(2)}}).Code)
	require.Equal(t, wire.CodeOK, c.call(&wire.Request{Op: wire.OpCreateTenant, Name: "fast"}).Code)
	var limited *wire.Response
	for i := range 10 {
		r := c.call(&wire.Request{Op: wire.OpSet, Tenant: "slow", Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v")})
		if r.Code == wire.CodeRateLimited {
			limited = r
			break
		}
		require.Equal(t, wire.CodeOK, r.Code, r.Msg)
	}
	require.NotNil(t, limited, "a tenant at 1 op/s with burst 2 must be throttled within 10 quick requests")
	require.Positive(t, limited.RetryAfter)
	// The neighbour is not affected.
	for i := range 20 {
		require.Equal(t, wire.CodeOK, c.call(&wire.Request{Op: wire.OpSet, Tenant: "fast", Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v")}).Code)
	}
	info := c.call(&wire.Request{Op: wire.OpGetTenant, Name: "slow"}).Tenant
	require.Positive(t, info.Usage.Throttled)

	// The per-tenant series go to an operator's scrape only.
	req, err := http.NewRequest(http.MethodGet, "http://"+s.HTTPAddr()+"/metrics", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+op)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	text := string(body)
	require.Contains(t, text, `tenantkv_tenant_requests_total{op="set",outcome="throttled",tenant="slow"}`)
	require.Contains(t, text, `tenantkv_tenant_requests_total{op="set",outcome="ok",tenant="fast"} 20`)
	require.Contains(t, text, `tenantkv_tenant_logical_bytes{tenant="fast"}`)
	require.True(t, strings.Contains(text, "tenantkv_is_leader 1"))
}

// POST /debug/flush flushes the store's memtable (the bench settles nodes
// with it); other methods are refused, and a node without Debug serves no
// /debug at all.
func TestDebugFlush(t *testing.T) {
	plain, _ := startNode(t)
	resp, err := http.Post("http://"+plain.HTTPAddr()+"/debug/flush", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	s, _ := startNodeWith(t, func(c *server.Config) { c.Debug = true })
	resp, err = http.Post("http://"+s.HTTPAddr()+"/debug/flush", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	resp, err = http.Get("http://" + s.HTTPAddr() + "/debug/flush")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}
