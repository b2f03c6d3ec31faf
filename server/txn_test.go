package server_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/internal/wire"
)

func le(v int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }

func TestTxnWire(t *testing.T) {
	s, op := startNode(t)
	c := login(t, s.Addr(), op)
	require.Equal(t, wire.CodeOK, c.call(&wire.Request{Op: wire.OpCreateTenant, Name: "acme"}).Code)

	rv := c.call(&wire.Request{Op: wire.OpReadVersion, Tenant: "acme"})
	require.Equal(t, wire.CodeOK, rv.Code, rv.Msg)
	require.Zero(t, rv.DataVersion)
	require.NotZero(t, rv.TenantID)

	set := c.call(&wire.Request{Op: wire.OpSet, Tenant: "acme", Key: []byte("k"), Value: []byte("v")})
	require.Equal(t, wire.CodeOK, set.Code)
	require.Equal(t, uint64(1), set.DataVersion)
	get := c.call(&wire.Request{Op: wire.OpGet, Tenant: "acme", Key: []byte("k")})
	require.Equal(t, uint64(1), get.DataVersion)
	scan := c.call(&wire.Request{Op: wire.OpScan, Tenant: "acme"})
	require.Equal(t, uint64(1), scan.KVs[0].Version)

	commit := func(req *wire.Request) *wire.Response {
		req.Op, req.Tenant = wire.OpCommit, "acme"
		return c.call(req)
	}
	// Reads at version 0 conflict with the set at version 1.
	resp := commit(&wire.Request{ReadVersion: 0, TenantID: rv.TenantID,
		Reads: []wire.KeyRange{{Start: []byte("k"), End: []byte("k\x00")}},
		Muts:  []wire.Mutation{{Kind: wire.MutSet, Key: []byte("k"), Value: []byte("w")}}})
	require.Equal(t, wire.CodeConflict, resp.Code, resp.Msg)
	// Without mutations the same reads are only validated, and conflict too.
	resp = commit(&wire.Request{ReadVersion: 0, Reads: []wire.KeyRange{{Start: []byte("k"), End: []byte("k\x00")}}})
	require.Equal(t, wire.CodeConflict, resp.Code, resp.Msg)
	resp = commit(&wire.Request{ReadVersion: 1, Reads: []wire.KeyRange{{Start: []byte("k"), End: []byte("k\x00")}}})
	require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	require.Equal(t, uint64(1), resp.DataVersion)
	resp = commit(&wire.Request{ReadVersion: 1, TxnID: []byte("t1"), Muts: []wire.Mutation{{Kind: wire.MutAdd, Key: []byte("n"), Value: le(3)}}})
	require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	require.Equal(t, uint64(2), resp.DataVersion)
	// The same commit sent again is recognised, not applied twice.
	resp = commit(&wire.Request{ReadVersion: 1, TxnID: []byte("t1"), Muts: []wire.Mutation{{Kind: wire.MutAdd, Key: []byte("n"), Value: le(3)}}})
	require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	require.Equal(t, uint64(2), resp.DataVersion)
	require.Equal(t, le(3), c.call(&wire.Request{Op: wire.OpGet, Tenant: "acme", Key: []byte("n")}).Value)
	// A read version of another incarnation of the tenant conflicts.
	resp = commit(&wire.Request{ReadVersion: 1, TenantID: rv.TenantID + 1, Muts: []wire.Mutation{{Kind: wire.MutSet, Key: []byte("x")}}})
	require.Equal(t, wire.CodeConflict, resp.Code, resp.Msg)

	// Malformed commits.
	for name, req := range map[string]*wire.Request{
		"short operand":       {Muts: []wire.Mutation{{Kind: wire.MutAdd, Key: []byte("n"), Value: []byte{1}}}},
		"atomic with end":     {Muts: []wire.Mutation{{Kind: wire.MutMax, Key: []byte("n"), Value: le(1), End: []byte("z")}}},
		"unknown kind":        {Muts: []wire.Mutation{{Kind: 99, Key: []byte("n")}}},
		"empty key":           {Muts: []wire.Mutation{{Kind: wire.MutCompareAndClear, Value: []byte("x")}}},
		"bad read range":      {Reads: []wire.KeyRange{{Start: []byte("b"), End: []byte("a")}}, Muts: []wire.Mutation{{Kind: wire.MutSet, Key: []byte("n")}}},
		"long transaction id": {TxnID: make([]byte, 33), Muts: []wire.Mutation{{Kind: wire.MutSet, Key: []byte("n")}}},
	} {
		resp := commit(req)
		require.NotEqual(t, wire.CodeOK, resp.Code, name)
		require.NotEqual(t, wire.CodeInternal, resp.Code, name)
	}
	big := make([]byte, 100_000)
	var muts []wire.Mutation
	for range 106 {
		muts = append(muts, wire.Mutation{Kind: wire.MutSet, Key: []byte("big"), Value: big})
	}
	require.Equal(t, wire.CodeTxTooLarge, commit(&wire.Request{ReadVersion: 2, Muts: muts}).Code)

	// Compare-and-swap.
	cas := func(key, expect, value []byte, flags uint8) *wire.Response {
		return c.call(&wire.Request{Op: wire.OpCompareAndSwap, Tenant: "acme", Key: key, Expect: expect, Value: value, Flags: flags})
	}
	resp = cas([]byte("c"), nil, []byte("1"), wire.FlagExpectAbsent)
	require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	require.True(t, resp.Swapped)
	require.False(t, cas([]byte("c"), nil, []byte("2"), wire.FlagExpectAbsent).Swapped)
	require.True(t, cas([]byte("c"), []byte("1"), nil, wire.FlagDelete).Swapped)
	require.Equal(t, wire.CodeBadRequest, cas([]byte("c"), []byte("1"), nil, wire.FlagExpectAbsent).Code)
	require.Equal(t, wire.CodeBadRequest, cas([]byte("c"), nil, nil, 0x80).Code)

	// A watch: a change after the version it resumes from is answered at
	// once; none within the wait is an empty answer that says how far it
	// looked.
	w := c.call(&wire.Request{Op: wire.OpWatch, Tenant: "acme", Key: []byte("k"), End: []byte("k\x00"), ReadVersion: 0})
	require.Equal(t, wire.CodeOK, w.Code, w.Msg)
	require.Len(t, w.Events, 1)
	require.Equal(t, wire.Event{Version: 1, Kind: wire.MutSet, Key: []byte("k"), Value: []byte("v")}, w.Events[0])
	require.Equal(t, uint64(4), w.DataVersion, "complete up to the current version")
	w = c.call(&wire.Request{Op: wire.OpWatch, Tenant: "acme", Key: []byte("k"), End: []byte("k\x00"), ReadVersion: 1, Wait: 50 * time.Millisecond})
	require.Equal(t, wire.CodeOK, w.Code, w.Msg)
	require.Empty(t, w.Events)
	require.Equal(t, uint64(4), w.DataVersion)
	require.Equal(t, wire.CodeBadRequest, c.call(&wire.Request{Op: wire.OpWatch, Tenant: "acme", ReadVersion: 1 << 40}).Code)
	require.Equal(t, wire.CodeInvalidRange, c.call(&wire.Request{Op: wire.OpWatch, Tenant: "acme", Key: []byte("b"), End: []byte("a")}).Code)
}

func TestTxnWireIsolation(t *testing.T) {
	s, op := startNode(t)
	admin := login(t, s.Addr(), op)
	for _, n := range []string{"alpha", "beta"} {
		require.Equal(t, wire.CodeOK, admin.call(&wire.Request{Op: wire.OpCreateTenant, Name: n}).Code)
	}
	tok := admin.call(&wire.Request{Op: wire.OpNewToken, Name: "beta"})
	ro := admin.call(&wire.Request{Op: wire.OpNewToken, Name: "beta", ReadOnly: true})
	c := login(t, s.Addr(), tok.Token)
	for _, other := range []string{"alpha", "no-such-tenant"} {
		for _, req := range []wire.Request{
			{Op: wire.OpReadVersion, Tenant: other},
			{Op: wire.OpCommit, Tenant: other, Muts: []wire.Mutation{{Kind: wire.MutSet, Key: []byte("k")}}},
			{Op: wire.OpCommit, Tenant: other, Reads: []wire.KeyRange{{}}},
			{Op: wire.OpCompareAndSwap, Tenant: other, Key: []byte("k"), Flags: wire.FlagExpectAbsent},
			{Op: wire.OpWatch, Tenant: other, Wait: time.Millisecond},
		} {
			resp := c.call(&req)
			require.Equal(t, wire.CodePermissionDenied, resp.Code, "%s on %s", req.Op, other)
			require.Equal(t, "permission denied", resp.Msg)
		}
	}
	// Its own tenant works, and its versions start at 0 whatever alpha does.
	require.Equal(t, wire.CodeOK, admin.call(&wire.Request{Op: wire.OpSet, Tenant: "alpha", Key: []byte("k")}).Code)
	resp := c.call(&wire.Request{Op: wire.OpReadVersion})
	require.Equal(t, wire.CodeOK, resp.Code)
	require.Zero(t, resp.DataVersion)

	// A read-only token may validate reads but not commit writes or swap.
	r := login(t, s.Addr(), ro.Token)
	require.Equal(t, wire.CodeOK, r.call(&wire.Request{Op: wire.OpCommit, Reads: []wire.KeyRange{{}}}).Code)
	require.Equal(t, wire.CodePermissionDenied, r.call(&wire.Request{Op: wire.OpCommit, Muts: []wire.Mutation{{Kind: wire.MutSet, Key: []byte("k")}}}).Code)
	require.Equal(t, wire.CodePermissionDenied, r.call(&wire.Request{Op: wire.OpCompareAndSwap, Key: []byte("k"), Flags: wire.FlagExpectAbsent}).Code)
}
