package proof

import (
	"testing"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// TestReadOfRecreatedTenantIsAConflict: a transaction's read carries the
// tenant ID its read version belongs to. When the tenant was deleted and
// re-created since, the read must fail as a transaction conflict (the
// client then retries the transaction on the new tenant), not as an
// internal error, which the client does not retry and the server logs as a
// failure of its own. The isolation suite found it with forged tenant IDs;
// this is the same path as a client's Tx.Get racing a re-creation.
func TestReadOfRecreatedTenantIsAConflict(t *testing.T) {
	c := newCluster(t, 1)
	ctx := t.Context()
	op, _, err := loginRaw(ctx, c.nodes[0].listen, c.token)
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	must := func(req *wire.Request) *wire.Response {
		t.Helper()
		resp, _, err := op.call(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Code != wire.CodeOK {
			t.Fatalf("%s: %s: %s", req.Op, resp.Code, resp.Msg)
		}
		return resp
	}
	must(&wire.Request{Op: wire.OpCreateTenant, Name: "txr"})
	must(&wire.Request{Op: wire.OpSet, Tenant: "txr", Key: []byte("k"), Value: []byte("v")})
	rv := must(&wire.Request{Op: wire.OpReadVersion, Tenant: "txr"})
	if rv.DataVersion == 0 || rv.TenantID == 0 {
		t.Fatalf("read version %d of tenant %d", rv.DataVersion, rv.TenantID)
	}
	must(&wire.Request{Op: wire.OpDeleteTenant, Name: "txr"})
	must(&wire.Request{Op: wire.OpCreateTenant, Name: "txr"})
	for _, o := range []wire.Op{wire.OpGet, wire.OpScan} {
		// What client.Tx sends for a read once it has a read version.
		resp, _, err := op.call(&wire.Request{Op: o, Tenant: "txr", Key: []byte("k"), Stale: true,
			ReadVersion: rv.DataVersion, TenantID: rv.TenantID})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Code != wire.CodeConflict {
			t.Errorf("transactional %s of a tenant re-created since the read version answered %s %q; want %s",
				o, resp.Code, resp.Msg, wire.CodeConflict)
		}
	}
}
