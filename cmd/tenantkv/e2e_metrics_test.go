package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestE2EMetrics scrapes a real `tenantkv serve` process: an operator's
// scrape has every series docs/METRICS.md lists (but those of other
// members: the node is alone), and a scrape without the operator token
// names no tenant.
func TestE2EMetrics(t *testing.T) {
	skipShort(t)
	t.Parallel()
	dataDir := t.TempDir()
	n := startNode(t, dataDir, "metered")
	c := &clusterCLI{t: t, endpoints: []string{n.addr}, tokenFile: filepath.Join(dataDir, "operator.token")}
	const tenant = "giraffe-e2e-metrics"
	c.ok("tenant", "create", tenant, "--max-keys", "3", "--max-bytes", "100000")
	db := c.openClient()
	tn := db.Tenant(tenant)
	for _, k := range []string{"a", "b", "c", "d"} { // the fourth is over the quota
		_ = tn.Set(t.Context(), []byte(k), []byte("v"))
	}
	if _, err := tn.Get(t.Context(), []byte("a")); err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(c.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if n.httpAddr == "" {
		t.Fatal("the node's HTTP address is unknown")
	}

	get := func(auth string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.httpAddr+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /metrics: %s %v", resp.Status, err)
		}
		return string(body)
	}

	doc, err := os.ReadFile("../../docs/METRICS.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := regexp.MustCompile("(?m)^\\| `([a-z_:][a-z0-9_:]*)` \\| ([a-z]+) \\|").FindAllStringSubmatch(string(doc), -1)
	if len(rows) < 50 {
		t.Fatalf("METRICS.md: %d series rows", len(rows))
	}
	otherMembers := map[string]bool{"tenantkv_raft_peer_reachable": true, "tenantkv_raft_peer_last_contact_seconds": true}
	all := get("Bearer " + strings.TrimSpace(string(tok)))
	for _, r := range rows {
		if otherMembers[r[1]] {
			continue
		}
		if !strings.Contains(all, "\n# TYPE "+r[1]+" "+r[2]+"\n") {
			t.Errorf("the node serves no %s %s", r[2], r[1])
		}
	}
	for _, want := range []string{
		`tenantkv_raft_voters_reachable 1`,
		`tenantkv_responses_total{code="quota_exceeded"} 1`,
		`tenantkv_tenant_quota_keys{tenant="` + tenant + `"} 3`,
		`tenantkv_pebble_wal_fsync_duration_seconds_count{db="raft_log"}`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the operator's scrape has no %s", want)
		}
	}
	for _, auth := range []string{"", "Bearer wrong"} {
		if body := get(auth); strings.Contains(body, tenant) || strings.Contains(body, "tenant=") {
			t.Errorf("a scrape with Authorization %q names the tenant", auth)
		}
	}
}
