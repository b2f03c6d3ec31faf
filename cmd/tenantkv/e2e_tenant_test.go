package main

// End-to-end tests of tenants as a product: limits and labels, states,
// scoped tokens, exact quotas, export and import. Helpers are in
// e2e_helpers_test.go.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/client"
)

// showJSON is `tenant show NAME --json` decoded.
func (c *clusterCLI) showJSON(name string) tenantJSON {
	c.t.Helper()
	var tj tenantJSON
	out := c.ok("tenant", "show", name, "--json")
	if err := json.Unmarshal([]byte(out), &tj); err != nil {
		c.t.Fatalf("tenant show %s --json: %v\n%s", name, err, out)
	}
	return tj
}

// as runs a command against the cluster with token tok.
func (c *clusterCLI) as(tok string, args ...string) result {
	c.t.Helper()
	return tkv(c.t, "", []string{"TENANTKV_ENDPOINTS=" + strings.Join(c.endpoints, ","), "TENANTKV_TOKEN=" + tok}, "", args...)
}

// asFails runs a command with token tok that must fail with exit 1 and a
// one-line stderr starting with msg.
func (c *clusterCLI) asFails(tok, msg string, args ...string) {
	c.t.Helper()
	r := c.as(tok, args...)
	if r.code != 1 || !strings.HasPrefix(r.stderr, msg) || strings.Count(r.stderr, "\n") != 1 || r.stdout != "" {
		c.t.Errorf("tenantkv %q with a token: %v; want exit 1 and %q", args, r, msg)
	}
}

// openClient opens a Go client on the cluster with its operator token.
func (c *clusterCLI) openClient() *client.DB {
	c.t.Helper()
	tok, err := os.ReadFile(c.tokenFile)
	if err != nil {
		c.t.Fatal(err)
	}
	db, err := client.Open(c.t.Context(), c.endpoints, &client.Options{Token: strings.TrimSpace(string(tok))})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { db.Close() })
	return db
}

// TestE2ETenantProduct drives one node through the tenant lifecycle,
// states, scoped tokens and exact quotas.
func TestE2ETenantProduct(t *testing.T) {
	skipShort(t)
	t.Parallel()
	dataDir := t.TempDir()
	n := startNode(t, dataDir, "solo")
	c := &clusterCLI{t: t, endpoints: []string{n.addr}, tokenFile: filepath.Join(dataDir, "operator.token")}

	t.Run("config", func(t *testing.T) {
		c := &clusterCLI{t: t, endpoints: c.endpoints, tokenFile: c.tokenFile}
		c.ok("tenant", "create", "acme", "--max-bytes", "1000000", "--max-keys", "500", "--ops-per-sec", "5000",
			"--burst", "100", "--max-concurrent", "64", "--label", "plan=trial", "--label", "team=web")
		tj := c.showJSON("acme")
		if tj.Limits != (limitsJSON{MaxBytes: 1000000, MaxKeys: 500, OpsPerSec: 5000, Burst: 100, MaxConcurrent: 64}) ||
			len(tj.Labels) != 2 || tj.Labels["plan"] != "trial" || tj.Labels["team"] != "web" || tj.State != "active" {
			t.Errorf("created tenant: %+v", tj)
		}
		if tj.Headroom.Keys == nil || *tj.Headroom.Keys != 500 || tj.Headroom.LogicalBytes == nil || *tj.Headroom.LogicalBytes != 1000000 {
			t.Errorf("headroom of an empty tenant: %+v", tj.Headroom)
		}
		out := c.ok("tenant", "set", "acme", "--max-keys", "0", "--ops-per-sec", "6000", "--label", "plan=pro", "--remove-label", "team", "--label", "tier=gold")
		if out != "updated tenant acme: state active, limits max_bytes=1000000 ops_per_sec=6000 burst=100 max_concurrent=64, labels plan=pro tier=gold\n" {
			t.Errorf("tenant set: %q", out)
		}
		tj = c.showJSON("acme")
		if tj.Limits.MaxKeys != 0 || tj.Limits.OpsPerSec != 6000 || tj.Limits.MaxBytes != 1000000 || tj.Headroom.Keys != nil ||
			len(tj.Labels) != 2 || tj.Labels["plan"] != "pro" || tj.Labels["tier"] != "gold" {
			t.Errorf("after tenant set: %+v", tj)
		}
		out = c.ok("tenant", "show", "acme")
		for _, want := range []string{"headroom: unlimited keys, 1000000 bytes", "labels:   plan=pro tier=gold", "limits:   max_bytes=1000000 ops_per_sec=6000"} {
			if !strings.Contains(out, want) {
				t.Errorf("tenant show: %q missing in\n%s", want, out)
			}
		}
		c.fails(1, "tenantkv: tenant not found", "tenant", "set", "nobody", "--state", "locked")
		c.fails(2, "tenantkv: nothing to change", "tenant", "set", "acme")

		// Labels: --label K= removes K and keeps the others, --clear-labels
		// removes them all (the last one too), then adds those given.
		labels := func(want string, args ...string) {
			t.Helper()
			out := c.ok(append([]string{"tenant", "set", "acme"}, args...)...)
			if !strings.HasSuffix(out, ", labels "+want+"\n") {
				t.Errorf("tenant set acme %q: %q; want labels %s", args, out, want)
			}
		}
		labels("plan=pro", "--label", "tier=")
		labels("none", "--label", "plan=")
		labels("a=1 b=2", "--label", "a=1", "--label", "b=2")
		labels("c=3", "--clear-labels", "--label", "c=3")
		labels("none", "--clear-labels")
		if tj := c.showJSON("acme"); len(tj.Labels) != 0 || tj.Limits.OpsPerSec != 6000 {
			t.Errorf("after --clear-labels: %+v", tj)
		}
		labels("none", "--remove-label", "gone")
	})

	t.Run("rename", func(t *testing.T) {
		c := &clusterCLI{t: t, endpoints: c.endpoints, tokenFile: c.tokenFile}
		c.ok("tenant", "create", "old-name")
		c.ok("--tenant", "old-name", "put", "k", "v")
		tok := strings.TrimSpace(c.ok("tenant", "token", "old-name"))
		id := c.showJSON("old-name").ID
		if out := c.ok("tenant", "rename", "old-name", "new-name"); out != "renamed tenant old-name to new-name\n" {
			t.Errorf("tenant rename: %q", out)
		}
		if tj := c.showJSON("new-name"); tj.ID != id {
			t.Errorf("renamed tenant has id %d, was %d", tj.ID, id)
		}
		if out := c.ok("--tenant", "new-name", "get", "k"); out != "v\n" {
			t.Errorf("get after rename: %q", out)
		}
		if r := c.as(tok, "get", "k"); r.code != 0 || r.stdout != "v\n" {
			t.Errorf("the tenant's token after rename: %v", r)
		}
		c.fails(1, "tenantkv: tenant not found", "tenant", "show", "old-name")
		c.fails(1, "tenantkv: tenant", "tenant", "rename", "new-name", "acme") // taken
		c.fails(1, "tenantkv: invalid tenant name", "tenant", "rename", "new-name", "Bad_Name")
		c.fails(1, "tenantkv: tenant not found", "tenant", "rename", "old-name", "other")
	})

	t.Run("states", func(t *testing.T) {
		c := &clusterCLI{t: t, endpoints: c.endpoints, tokenFile: c.tokenFile}
		c.ok("tenant", "create", "st")
		c.ok("--tenant", "st", "put", "k", "v")
		c.ok("tenant", "set", "st", "--state", "read-only")
		c.fails(1, "tenantkv: tenant is read-only", "--tenant", "st", "put", "k", "w")
		c.fails(1, "tenantkv: tenant is read-only", "--tenant", "st", "del", "k")
		if out := c.ok("--tenant", "st", "get", "k"); out != "v\n" {
			t.Errorf("get in a read-only tenant: %q", out)
		}
		if out := c.ok("--tenant", "st", "scan"); out != "k\tv\n" {
			t.Errorf("scan in a read-only tenant: %q", out)
		}
		c.ok("tenant", "set", "st", "--state", "locked")
		c.fails(1, "tenantkv: tenant is locked", "--tenant", "st", "get", "k")
		c.fails(1, "tenantkv: tenant is locked", "--tenant", "st", "scan")
		c.fails(1, "tenantkv: tenant is locked", "--tenant", "st", "put", "k", "w")
		if out := c.ok("tenant", "list", "--state", "locked"); !strings.Contains(out, "\nst ") || strings.Count(out, "\n") != 2 {
			t.Errorf("tenant list --state locked:\n%s", out)
		}
		var active []tenantJSON
		if err := json.Unmarshal([]byte(c.ok("tenant", "list", "--state", "active", "--json")), &active); err != nil {
			t.Fatal(err)
		}
		for _, tj := range active {
			if tj.Name == "st" || tj.State != "active" {
				t.Errorf("tenant list --state active lists %s (%s)", tj.Name, tj.State)
			}
		}
		c.ok("tenant", "set", "st", "--state", "active")
		c.ok("--tenant", "st", "put", "k", "w")
		if out := c.ok("--tenant", "st", "get", "k"); out != "w\n" {
			t.Errorf("get after reactivation: %q", out)
		}
	})

	t.Run("tokens", func(t *testing.T) {
		c := &clusterCLI{t: t, endpoints: c.endpoints, tokenFile: c.tokenFile}
		c.ok("tenant", "create", "tk")
		c.ok("--tenant", "tk", "put", "k", "v")
		ro := strings.TrimSpace(c.ok("tenant", "token", "tk", "--read-only"))
		if r := c.as(ro, "get", "k"); r.code != 0 || r.stdout != "v\n" {
			t.Errorf("read-only token, get: %v", r)
		}
		c.asFails(ro, "tenantkv: permission denied", "put", "k", "w")
		c.asFails(ro, "tenantkv: permission denied", "del", "k")
		// A tenant token may see its own tenant's record, nobody else's.
		if r := c.as(ro, "tenant", "show", "tk"); r.code != 0 || !strings.Contains(r.stdout, "name:     tk") {
			t.Errorf("tenant show with the tenant's own token: %v", r)
		}
		c.asFails(ro, "tenantkv: permission denied", "tenant", "show", "acme")
		c.asFails(ro, "tenantkv: permission denied", "tenant", "tokens", "tk")

		var made newTokenJSON
		if err := json.Unmarshal([]byte(c.ok("tenant", "token", "tk", "--ttl", "1h", "--json")), &made); err != nil {
			t.Fatal(err)
		}
		if id, err := client.TokenID(made.Token); err != nil || id != made.ID || made.Tenant != "tk" || made.ReadOnly {
			t.Errorf("tenant token --json: %+v (%v)", made, err)
		}
		var toks []tokenJSON
		if err := json.Unmarshal([]byte(c.ok("tenant", "tokens", "tk", "--json")), &toks); err != nil {
			t.Fatal(err)
		}
		roID, _ := client.TokenID(ro)
		byID := map[string]tokenJSON{}
		for _, tk := range toks {
			byID[tk.ID] = tk
		}
		if len(toks) != 2 || !byID[roID].ReadOnly || byID[roID].ExpiresAt != nil || byID[made.ID].ReadOnly ||
			byID[made.ID].ExpiresAt == nil || byID[made.ID].Expired || byID[made.ID].Tenant != "tk" {
			t.Errorf("tenant tokens --json: %+v", toks)
		}
		out := c.ok("tenant", "tokens", "tk")
		if !strings.HasPrefix(out, "ID ") || !strings.Contains(out, roID+"  read-only ") || !strings.Contains(out, " never\n") ||
			strings.Contains(out, ro) || strings.Contains(out, made.Token) {
			t.Errorf("tenant tokens:\n%s", out)
		}

		// Expiry: a token with --ttl 1s stops working, on its own.
		start := time.Now()
		short := strings.TrimSpace(c.ok("tenant", "token", "tk", "--ttl", "1s"))
		if r := c.as(short, "get", "k"); r.code != 0 && time.Since(start) < time.Second {
			t.Errorf("a token with --ttl 1s refused within a second: %v", r)
		}
		waitRefused(t, c, short, 10*time.Second)
		if time.Since(start) < time.Second {
			t.Errorf("a token with --ttl 1s stopped working before a second passed")
		}
		if out := c.ok("tenant", "tokens", "tk"); !strings.Contains(out, "(expired)") {
			t.Errorf("tenant tokens does not mark the expired token:\n%s", out)
		}

		// Revocation, by ID or by the token itself.
		if out := c.ok("tenant", "revoke", roID); out != "revoked token "+roID+"\n" {
			t.Errorf("tenant revoke: %q", out)
		}
		c.asFails(ro, "tenantkv: permission denied", "get", "k")
		c.fails(1, "tenantkv: token not found", "tenant", "revoke", roID)
		if out := c.ok("tenant", "revoke", made.Token); out != "revoked token "+made.ID+"\n" {
			t.Errorf("tenant revoke TOKEN: %q", out)
		}
		c.asFails(made.Token, "tenantkv: permission denied", "get", "k")
	})

	t.Run("operator tokens", func(t *testing.T) {
		c := &clusterCLI{t: t, endpoints: c.endpoints, tokenFile: c.tokenFile}
		op := strings.TrimSpace(c.ok("token", "create", "--ttl", "1h"))
		if r := c.as(op, "tenant", "create", "by-new-operator"); r.code != 0 {
			t.Fatalf("new operator token: %v", r)
		}
		var made newTokenJSON
		if err := json.Unmarshal([]byte(c.ok("token", "create", "--json")), &made); err != nil {
			t.Fatal(err)
		}
		if made.Tenant != "" || made.ID == "" {
			t.Errorf("token create --json: %+v", made)
		}
		if r := c.as(made.Token, "tenant", "list"); r.code != 0 || !strings.Contains(r.stdout, "by-new-operator") {
			t.Errorf("second operator token: %v", r)
		}
		id, _ := client.TokenID(op)
		if out := c.ok("token", "revoke", id); out != "revoked token "+id+"\n" {
			t.Errorf("token revoke: %q", out)
		}
		c.asFails(op, "tenantkv: permission denied", "tenant", "list")
		c.as(made.Token, "token", "revoke", made.ID) // an operator token may revoke itself
		c.asFails(made.Token, "tenantkv: permission denied", "tenant", "list")
		c.ok("tenant", "list") // the original operator token is untouched
	})

	t.Run("quota keys", func(t *testing.T) {
		c := &clusterCLI{t: t, endpoints: c.endpoints, tokenFile: c.tokenFile}
		c.ok("tenant", "create", "qk", "--max-keys", "3")
		for _, k := range []string{"a", "b", "c"} {
			c.ok("--tenant", "qk", "put", k, "v")
		}
		c.fails(1, "tenantkv: quota exceeded", "--tenant", "qk", "put", "d", "v")
		c.fails(1, "tenantkv: not found", "--tenant", "qk", "get", "d")
		c.ok("--tenant", "qk", "put", "a", "overwrite") // no new key: fits
		if tj := c.showJSON("qk"); tj.Usage.Keys != 3 || tj.Headroom.Keys == nil || *tj.Headroom.Keys != 0 {
			t.Errorf("usage at the limit: %+v, headroom %+v", tj.Usage, tj.Headroom)
		}
		c.ok("--tenant", "qk", "del", "b")
		c.ok("--tenant", "qk", "put", "d", "v")
		if out := c.ok("--tenant", "qk", "scan"); out != "a\toverwrite\nc\tv\nd\tv\n" {
			t.Errorf("scan: %q", out)
		}
	})

	t.Run("quota bytes", func(t *testing.T) {
		c := &clusterCLI{t: t, endpoints: c.endpoints, tokenFile: c.tokenFile}
		// Logical bytes are len(key) + len(value) summed over live keys.
		c.ok("tenant", "create", "qb", "--max-bytes", "20")
		c.ok("--tenant", "qb", "put", "k1", "12345678") // 10
		c.ok("--tenant", "qb", "put", "k2", "12345678") // 20: exactly the limit
		c.fails(1, "tenantkv: quota exceeded", "--tenant", "qb", "put", "k", "")
		c.fails(1, "tenantkv: quota exceeded", "--tenant", "qb", "put", "k2", "123456789") // 21
		c.ok("--tenant", "qb", "put", "k2", "1234567")                                     // 19
		c.fails(1, "tenantkv: quota exceeded", "--tenant", "qb", "put", "k3", "")          // 21
		c.ok("--tenant", "qb", "put", "k", "")                                             // 20
		tj := c.showJSON("qb")
		if tj.Usage.LogicalBytes != 20 || tj.Usage.Keys != 3 || tj.Headroom.LogicalBytes == nil || *tj.Headroom.LogicalBytes != 0 {
			t.Errorf("usage at the limit: %+v, headroom %+v", tj.Usage, tj.Headroom)
		}
		if out := c.ok("tenant", "show", "qb"); !strings.Contains(out, "headroom: unlimited keys, 0 bytes") {
			t.Errorf("tenant show at the limit:\n%s", out)
		}
		c.ok("--tenant", "qb", "del", "k1") // deletes always fit: 10 left
		c.ok("--tenant", "qb", "put", "k3", "1234567")
		if tj := c.showJSON("qb"); tj.Usage.LogicalBytes != 19 || *tj.Headroom.LogicalBytes != 1 {
			t.Errorf("usage after delete and put: %+v", tj.Usage)
		}
		// Lowering a limit below the usage: nothing is lost, headroom shows it.
		c.ok("tenant", "set", "qb", "--max-bytes", "15")
		if out := c.ok("tenant", "show", "qb"); !strings.Contains(out, "0 bytes (4 over the limit)") {
			t.Errorf("tenant show over the limit:\n%s", out)
		}
		c.fails(1, "tenantkv: quota exceeded", "--tenant", "qb", "put", "k3", "12345678")
		c.ok("--tenant", "qb", "put", "k3", "123") // shrinks: allowed
	})
}

// TestE2EExportImport exports a tenant from one single-node cluster and
// imports it into another.
func TestE2EExportImport(t *testing.T) {
	skipShort(t)
	t.Parallel()
	dirA, dirB := t.TempDir(), t.TempDir()
	na, nb := startNode(t, dirA, "a1"), startNode(t, dirB, "b1")
	a := &clusterCLI{t: t, endpoints: []string{na.addr}, tokenFile: filepath.Join(dirA, "operator.token")}
	b := &clusterCLI{t: t, endpoints: []string{nb.addr}, tokenFile: filepath.Join(dirB, "operator.token")}
	ctx := t.Context()

	a.ok("tenant", "create", "shop", "--max-keys", "10000", "--ops-per-sec", "100000", "--label", "plan=pro")
	a.ok("tenant", "create", "other") // must not leak into the export
	dba := a.openClient()
	if err := dba.Tenant("other").Set(ctx, []byte("secret"), []byte("of another tenant")); err != nil {
		t.Fatal(err)
	}
	// 3,000 pairs, binary keys and values, about 2 MiB: several export
	// pages and several import batches.
	batch := dba.Tenant("shop").NewBatch()
	for i := range 3000 {
		key := fmt.Appendf(nil, "k/%05d/\x00\xff\n", i)
		value := bytes.Repeat([]byte{byte(i), 0, '\t'}, i%100)
		if i%100 == 0 {
			value = bytes.Repeat([]byte{byte(i)}, 60_000)
		}
		batch.Set(key, value)
		if batch.Size() > 1<<20 {
			if err := batch.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			batch.Reset()
		}
	}
	if err := batch.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	a.ok("tenant", "set", "shop", "--state", "read-only")

	exp := a.run("", "tenant", "export", "shop")
	if exp.code != 0 || exp.stderr != "" {
		t.Fatalf("tenant export: exit %d, stderr %q", exp.code, exp.stderr)
	}
	file := exp.stdout
	if !strings.HasPrefix(file, "TKVX\x01") || strings.Contains(file, "of another tenant") {
		t.Fatalf("export file: %d bytes starting %q", len(file), file[:min(len(file), 16)])
	}

	imp := b.run(file, "tenant", "import", "shop-copy")
	if imp.code != 0 || imp.stderr != "" || !strings.HasPrefix(imp.stdout, "imported 3000 keys (") || !strings.HasSuffix(imp.stdout, ") into new tenant shop-copy\n") {
		t.Fatalf("tenant import: %v", imp)
	}
	dbb := b.openClient()
	same(t, dba.Tenant("shop"), dbb.Tenant("shop-copy"), 3000)
	src, dst := a.showJSON("shop"), b.showJSON("shop-copy")
	if dst.State != "suspended" || dst.Limits != src.Limits || dst.Labels["plan"] != "pro" || len(dst.Labels) != 1 ||
		dst.Usage.Keys != src.Usage.Keys || dst.Usage.LogicalBytes != src.Usage.LogicalBytes {
		t.Errorf("imported tenant %+v\nsource %+v", dst, src)
	}

	// The tenant exists now, and is not empty: refused.
	r := b.run(file, "tenant", "import", "shop-copy")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "tenantkv: ") {
		t.Errorf("import into an existing read-only tenant: %v", r)
	}
	b.ok("tenant", "set", "shop-copy", "--state", "active")
	r = b.run(file, "tenant", "import", "shop-copy")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "tenantkv: tenant not empty") {
		t.Errorf("import into a non-empty tenant: %v", r)
	}

	// An existing empty tenant is loaded, and keeps its own config.
	b.ok("tenant", "create", "empty", "--label", "mine=yes")
	if r := b.run(file, "tenant", "import", "empty"); r.code != 0 || !strings.HasSuffix(r.stdout, " into tenant empty\n") {
		t.Errorf("import into an empty tenant: %v", r)
	}
	same(t, dba.Tenant("shop"), dbb.Tenant("empty"), 3000)
	if tj := b.showJSON("empty"); tj.State != "active" || tj.Labels["mine"] != "yes" || tj.Limits.MaxKeys != 0 {
		t.Errorf("existing tenant's config changed by the import: %+v", tj)
	}

	// A damaged file is refused before anything is written: a byte of the
	// last record changed (earlier batches would load fine), or the file
	// cut short.
	bad := []byte(file)
	bad[len(bad)-20] ^= 0x20
	for name, f := range map[string]string{"corrupt": string(bad), "truncated": file[:len(file)-1]} {
		r := b.run(f, "tenant", "import", "damaged")
		if r.code != 1 || !strings.HasPrefix(r.stderr, "tenantkv: corrupt export file") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%s file: %v", name, r)
		}
		b.fails(1, "tenantkv: tenant not found", "tenant", "show", "damaged")
	}
	r = b.run("", "tenant", "import", "damaged")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "tenantkv: corrupt export file") {
		t.Errorf("empty stdin: %v", r)
	}
	a.fails(1, "tenantkv: tenant not found", "tenant", "export", "nobody")
}

// same checks that tenants x and y hold the same pairs, n of them.
func same(t *testing.T, x, y *client.Tenant, n int) {
	t.Helper()
	ctx := t.Context()
	var xs, ys []client.KV
	for kv, err := range x.Range(ctx, client.KeyRange{}, nil) {
		if err != nil {
			t.Fatal(err)
		}
		xs = append(xs, kv)
	}
	for kv, err := range y.Range(ctx, client.KeyRange{}, nil) {
		if err != nil {
			t.Fatal(err)
		}
		ys = append(ys, kv)
	}
	if len(xs) != n || len(ys) != n {
		t.Fatalf("%s holds %d pairs, %s %d; want %d", x.Name(), len(xs), y.Name(), len(ys), n)
	}
	for i := range xs {
		if !bytes.Equal(xs[i].Key, ys[i].Key) || !bytes.Equal(xs[i].Value, ys[i].Value) {
			t.Fatalf("pair %d differs: %q (%d bytes) in %s, %q (%d bytes) in %s",
				i, xs[i].Key, len(xs[i].Value), x.Name(), ys[i].Key, len(ys[i].Value), y.Name())
		}
	}
}

// waitRefused polls until a get with tok is refused with "permission
// denied", failing the test if that takes longer than within.
func waitRefused(t *testing.T, c *clusterCLI, tok string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		r := c.as(tok, "get", "k")
		if r.code == 1 && strings.HasPrefix(r.stderr, "tenantkv: permission denied") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("token still accepted by %v after %v: %v", c.endpoints, within, r)
		}
		<-tick.C
	}
}
