package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/tenantkv/tenantkv/internal/testcluster/inproc"
	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/server"
)

// docs/METRICS.md is the reference of /metrics: these tests hold the
// nodes, the doc, the alerting rules and the dashboard to each other.

const (
	metricsDoc = "../docs/METRICS.md"
	alertsFile = "../docs/prometheus-alerts.yml"
	dashFile   = "../docs/grafana-dashboard.json"
)

// docSeries is one row of METRICS.md.
type docSeries struct {
	typ    string   // gauge, counter, histogram, summary
	labels []string // sorted; le and quantile left out
}

// docRow is a table row whose first cell is one backquoted series name.
var docRow = regexp.MustCompile("^\\| `([a-zA-Z_:][a-zA-Z0-9_:]*)` \\| ([a-z]+) \\| ([^|]*) \\| [^|]+ \\|$")

// readMetricsDoc parses the tables of METRICS.md.
func readMetricsDoc(t *testing.T) map[string]docSeries {
	t.Helper()
	raw, err := os.ReadFile(metricsDoc)
	require.NoError(t, err)
	out := map[string]docSeries{}
	for i, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		m := docRow.FindStringSubmatch(line)
		require.NotNil(t, m, "METRICS.md line %d is not a series row: %s", i+1, line)
		name, typ, labelCell := m[1], m[2], strings.TrimSpace(m[3])
		require.Contains(t, []string{"gauge", "counter", "histogram", "summary"}, typ, "line %d", i+1)
		var labels []string
		if labelCell != "—" {
			for _, l := range strings.Split(labelCell, ",") {
				l = strings.TrimSpace(l)
				require.True(t, strings.HasPrefix(l, "`") && strings.HasSuffix(l, "`") && len(l) > 2, "line %d: label %q", i+1, l)
				labels = append(labels, strings.Trim(l, "`"))
			}
		}
		sort.Strings(labels)
		_, dup := out[name]
		require.False(t, dup, "METRICS.md lists %s twice", name)
		out[name] = docSeries{typ: typ, labels: labels}
	}
	require.Greater(t, len(out), 50, "METRICS.md rows not found")
	return out
}

// scrape GETs /metrics with the Authorization header auth (none if empty).
func scrape(t *testing.T, httpAddr, auth string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/metrics", nil)
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"), "content type %q", resp.Header.Get("Content-Type"))
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

// servedSeries is one family of a scrape: its type and label names.
type servedSeries struct {
	typ    string
	labels []string
}

// parseExposition parses text in the Prometheus text format, strictly:
// legacy metric and label names, HELP and TYPE for every family, no
// sample twice, label names alike across a family's samples, histograms
// with ascending cumulative buckets ending in +Inf equal to the count.
func parseExposition(t *testing.T, text string) map[string]servedSeries {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	require.NoError(t, err, "/metrics is not valid Prometheus text")
	// The parser merges repeated samples; count the sample lines to
	// catch one served twice.
	lines := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key := line[:strings.LastIndexByte(line, ' ')]
		require.False(t, lines[key], "sample served twice: %s", key)
		lines[key] = true
	}
	out := map[string]servedSeries{}
	for name, f := range fams {
		require.NotEmpty(t, f.GetHelp(), "%s has no HELP", name)
		require.NotNil(t, f.Type, "%s has no TYPE", name)
		require.NotEmpty(t, f.Metric, "%s has no samples", name)
		var names []string
		for i, m := range f.Metric {
			var these []string
			for _, lp := range m.Label {
				these = append(these, lp.GetName())
			}
			sort.Strings(these)
			if i == 0 {
				names = these
			}
			require.Equal(t, names, these, "%s: samples with different label names", name)
			if h := m.GetHistogram(); h != nil {
				checkHistogram(t, name, h)
			}
		}
		out[name] = servedSeries{typ: strings.ToLower(f.GetType().String()), labels: names}
	}
	return out
}

func checkHistogram(t *testing.T, name string, h *dto.Histogram) {
	t.Helper()
	bs := h.GetBucket()
	require.NotEmpty(t, bs, "%s: no buckets", name)
	for i := 1; i < len(bs); i++ {
		require.Less(t, bs[i-1].GetUpperBound(), bs[i].GetUpperBound(), "%s: buckets out of order", name)
		require.LessOrEqual(t, bs[i-1].GetCumulativeCount(), bs[i].GetCumulativeCount(), "%s: counts not cumulative", name)
	}
	last := bs[len(bs)-1]
	require.True(t, math.IsInf(last.GetUpperBound(), 1), "%s: no +Inf bucket", name)
	require.Equal(t, h.GetSampleCount(), last.GetCumulativeCount(), "%s: +Inf bucket is not the count", name)
	require.GreaterOrEqual(t, h.GetSampleSum(), 0.0, "%s: negative sum", name)
}

// compareWithDoc fails for a documented series not served (or served with
// another type or labels), and for a served one not documented.
func compareWithDoc(t *testing.T, doc map[string]docSeries, served map[string]servedSeries) {
	t.Helper()
	for name, d := range doc {
		s, ok := served[name]
		if !ok {
			t.Errorf("METRICS.md lists %s; the node does not serve it", name)
			continue
		}
		if s.typ != d.typ {
			t.Errorf("%s: METRICS.md says %s, the node serves a %s", name, d.typ, s.typ)
		}
		if !slices.Equal(s.labels, d.labels) {
			t.Errorf("%s: METRICS.md says labels %v, the node serves %v", name, d.labels, s.labels)
		}
	}
	for name := range served {
		if _, ok := doc[name]; !ok {
			t.Errorf("the node serves %s; METRICS.md does not list it", name)
		}
	}
}

// The leader of a real three-node cluster (Pebble on disk, raft over TCP),
// after traffic, serves to an operator's scrape exactly the series
// METRICS.md lists, with their types and labels, in valid exposition
// format; so does a follower, less the leader-only ones.
func TestMetricsMatchDoc(t *testing.T) {
	doc := readMetricsDoc(t)
	c := inproc.Start(t, 3, &inproc.Options{Configure: func(n *inproc.Node, cfg *server.Config) {
		cfg.HTTPAddr = "127.0.0.1:0"
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	leader, err := c.Leader(ctx)
	require.NoError(t, err)
	s := leader.Server()
	conn := login(t, s.Addr(), c.Token)
	r := conn.call(&wire.Request{Op: wire.OpCreateTenant, Name: "metered", Config: &wire.TenantConfig{MaxBytes: u64(1 << 20), MaxKeys: u64(1000)}})
	require.Equal(t, wire.CodeOK, r.Code, r.Msg)
	for i := range 20 {
		r := conn.call(&wire.Request{Op: wire.OpSet, Tenant: "metered", Key: fmt.Appendf(nil, "k%02d", i), Value: []byte("value")})
		require.Equal(t, wire.CodeOK, r.Code, r.Msg)
	}
	require.Equal(t, wire.CodeNotFound, conn.call(&wire.Request{Op: wire.OpGet, Tenant: "metered", Key: []byte("missing")}).Code)

	// Each follower has answered the leader by the time it is reachable.
	var text string
	require.Eventually(t, func() bool {
		text = scrape(t, s.HTTPAddr(), "Bearer "+c.Token)
		return strings.Count(text, "tenantkv_raft_peer_last_contact_seconds{") == 2 &&
			strings.Contains(text, "tenantkv_raft_voters_reachable 3")
	}, 20*time.Second, 20*time.Millisecond, "the leader does not see both followers")
	served := parseExposition(t, text)
	compareWithDoc(t, doc, served)
	for _, want := range []string{
		`tenantkv_raft_state{state="leader"} 1`,
		`tenantkv_raft_voters 3`,
		`tenantkv_request_duration_seconds_count{op="set"} 20`,
		`tenantkv_responses_total{code="not_found"} 1`,
		`tenantkv_tenant_quota_keys{tenant="metered"} 1000`,
		`tenantkv_pebble_l0_files{db="raft_log"}`,
		`tenantkv_pebble_l0_files{db="store"}`,
	} {
		require.Contains(t, text, want)
	}

	// A follower serves the same minus the leader-only series.
	var follower *inproc.Node
	for _, n := range c.Running() {
		if n != leader {
			follower = n
			break
		}
	}
	fserved := parseExposition(t, scrape(t, follower.Server().HTTPAddr(), "Bearer "+c.Token))
	leaderOnly := []string{"tenantkv_raft_voters_reachable", "tenantkv_raft_peer_reachable", "tenantkv_raft_peer_last_contact_seconds"}
	for _, name := range leaderOnly {
		require.NotContains(t, fserved, name, "a follower serves a leader-only series")
	}
	for name := range fserved {
		require.Contains(t, doc, name, "a follower serves %s, not in METRICS.md", name)
	}
}

// Without an operator token no scrape names a tenant, and without one
// nothing in the answer depends on the tenants at all: the bodies of two
// anonymous scrapes list the same series. With the token, or on a node
// started with MetricsTenantLabels, the tenants are named.
func TestMetricsNameNoTenantWithoutOperatorToken(t *testing.T) {
	names := []string{"zebra-q7x", "okapi-m2v"}
	traffic := func(s *server.Server, op string) string {
		admin := login(t, s.Addr(), op)
		for _, n := range names {
			require.Equal(t, wire.CodeOK, admin.call(&wire.Request{Op: wire.OpCreateTenant, Name: n, Config: &wire.TenantConfig{MaxKeys: u64(5)}}).Code)
			for i := range 6 { // the last one past the quota
				admin.call(&wire.Request{Op: wire.OpSet, Tenant: n, Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v")})
			}
			admin.call(&wire.Request{Op: wire.OpGet, Tenant: n, Key: []byte("k0")})
		}
		tok := admin.call(&wire.Request{Op: wire.OpNewToken, Name: names[0]})
		require.Equal(t, wire.CodeOK, tok.Code, tok.Msg)
		// The tenant's own connection counts too.
		tc := dialRaw(t, s.Addr())
		require.Equal(t, wire.CodeOK, tc.call(&wire.Request{Op: wire.OpHello, Version: wire.ProtocolVersion, Token: tok.Token}).Code)
		require.Equal(t, wire.CodeOK, tc.call(&wire.Request{Op: wire.OpGet, Key: []byte("k1")}).Code)
		return tok.Token
	}
	leaks := func(body string) []string {
		var found []string
		for _, n := range append(names, "tenant=") {
			if strings.Contains(body, n) {
				found = append(found, n)
			}
		}
		return found
	}

	s, op := startNode(t)
	tenantToken := traffic(s, op)
	for _, auth := range []string{"", "Bearer ", "Bearer " + tenantToken, "Bearer not-a-token", "Basic " + op, op, "bearer " + op} {
		body := scrape(t, s.HTTPAddr(), auth)
		require.Empty(t, leaks(body), "a scrape with Authorization %q names tenants", auth)
		served := parseExposition(t, body)
		for name := range served {
			require.False(t, strings.HasPrefix(name, "tenantkv_tenant_"), "%s served to a scrape with Authorization %q", name, auth)
		}
	}
	// The node-level sign of a tenant at its quota names no tenant.
	require.Contains(t, scrape(t, s.HTTPAddr(), ""), `tenantkv_responses_total{code="quota_exceeded"} 2`)
	withToken := scrape(t, s.HTTPAddr(), "Bearer "+op)
	require.ElementsMatch(t, append(names, "tenant="), leaks(withToken), "the operator's scrape names every tenant")
	require.Contains(t, withToken, `tenantkv_tenant_quota_keys{tenant="zebra-q7x"} 5`)

	open, op2 := startNodeWith(t, func(c *server.Config) { c.MetricsTenantLabels = true })
	traffic(open, op2)
	require.ElementsMatch(t, append(names, "tenant="), leaks(scrape(t, open.HTTPAddr(), "")), "MetricsTenantLabels names tenants to every scrape")
}

// seriesRef finds the metric names in a PromQL expression, and the label
// names of the matchers right after each: crude, but every identifier with
// a prefix of ours that is not in METRICS.md fails the test.
var (
	promString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promIdent  = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promSel    = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}`)
	matcherKey = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
)

// ourPrefixes are the prefixes of the series METRICS.md lists.
var ourPrefixes = []string{"tenantkv_", "go_", "process_"}

// checkExpr fails for a series or label the expression uses that
// METRICS.md does not list. A histogram or summary is also reached
// through its _bucket, _sum and _count series.
func checkExpr(t *testing.T, where, expr string, doc map[string]docSeries) {
	t.Helper()
	resolve := func(name string) (docSeries, bool) {
		if d, ok := doc[name]; ok {
			return d, true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok {
				if d, ok := doc[base]; ok && (d.typ == "histogram" || (d.typ == "summary" && suffix != "_bucket")) {
					if suffix == "_bucket" {
						d.labels = append(slices.Clone(d.labels), "le")
					}
					return d, true
				}
			}
		}
		return docSeries{}, false
	}
	ours := func(name string) bool {
		for _, p := range ourPrefixes {
			if strings.HasPrefix(name, p) {
				return true
			}
		}
		return false
	}
	// Label values first, so that no identifier inside a string counts.
	for _, m := range promSel.FindAllStringSubmatch(expr, -1) {
		d, ok := resolve(m[1])
		if !ok {
			continue // reported below if it is ours
		}
		for _, km := range matcherKey.FindAllStringSubmatch(promString.ReplaceAllString(m[2], `""`), -1) {
			key := km[1]
			if key == "job" || key == "instance" || key == "quantile" || slices.Contains(d.labels, key) {
				continue
			}
			t.Errorf("%s: %s has no label %q in METRICS.md: %s", where, m[1], key, expr)
		}
	}
	seen := 0
	for _, id := range promIdent.FindAllString(promString.ReplaceAllString(expr, `""`), -1) {
		if !ours(id) {
			continue
		}
		seen++
		if _, ok := resolve(id); !ok {
			t.Errorf("%s: %s is not a series of METRICS.md: %s", where, id, expr)
		}
	}
	if seen == 0 && !strings.Contains(expr, "up{") {
		t.Errorf("%s: the expression uses none of the node's series: %s", where, expr)
	}
}

// The alerting rules are a valid rule file of the alerts the issue asks
// for, and use only series METRICS.md lists.
func TestAlertRulesUseListedSeries(t *testing.T) {
	doc := readMetricsDoc(t)
	raw, err := os.ReadFile(alertsFile)
	require.NoError(t, err)
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Record      string            `yaml:"record"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true) // a misspelt key is an error, as for promtool
	require.NoError(t, dec.Decode(&file))
	require.NotEmpty(t, file.Groups)
	alerts := map[string]bool{}
	groups := map[string]bool{}
	for _, g := range file.Groups {
		require.NotEmpty(t, g.Name)
		require.False(t, groups[g.Name], "group %s twice", g.Name)
		groups[g.Name] = true
		require.NotEmpty(t, g.Rules, "group %s", g.Name)
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert, "group %s: a rule without alert", g.Name)
			require.Empty(t, r.Record, "%s: alert and record", r.Alert)
			require.False(t, alerts[r.Alert], "alert %s twice", r.Alert)
			alerts[r.Alert] = true
			require.NotEmpty(t, strings.TrimSpace(r.Expr), r.Alert)
			if r.For != "" {
				_, err := model.ParseDuration(r.For)
				require.NoError(t, err, "%s: for %q", r.Alert, r.For)
			}
			require.Contains(t, []string{"critical", "warning", "info"}, r.Labels["severity"], "%s: severity", r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], "%s: summary", r.Alert)
			require.NotEmpty(t, r.Annotations["description"], "%s: description", r.Alert)
			require.Equal(t, strings.Count(r.Expr, "("), strings.Count(r.Expr, ")"), "%s: parentheses", r.Alert)
			checkExpr(t, r.Alert, r.Expr, doc)
		}
	}
	for _, want := range []string{"TenantkvNoLeader", "TenantkvQuorumAtRisk", "TenantkvNodeLagging", "TenantkvDiskFilling", "TenantkvTenantAtQuota"} {
		require.True(t, alerts[want], "no alert %s", want)
	}
}

// The dashboard is Grafana dashboard JSON whose every query uses only
// series METRICS.md lists.
func TestDashboardUsesListedSeries(t *testing.T) {
	doc := readMetricsDoc(t)
	raw, err := os.ReadFile(dashFile)
	require.NoError(t, err)
	type target struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	}
	type panel struct {
		ID      int                       `json:"id"`
		Type    string                    `json:"type"`
		Title   string                    `json:"title"`
		GridPos *struct{ H, W, X, Y int } `json:"gridPos"`
		Targets []target                  `json:"targets"`
	}
	var dash struct {
		Title         string  `json:"title"`
		UID           string  `json:"uid"`
		SchemaVersion int     `json:"schemaVersion"`
		Panels        []panel `json:"panels"`
		Templating    struct {
			List []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	require.NoError(t, dec.Decode(&dash))
	require.NotEmpty(t, dash.Title)
	require.NotEmpty(t, dash.UID)
	require.GreaterOrEqual(t, dash.SchemaVersion, 30)
	ids := map[int]bool{}
	queries := 0
	for _, p := range dash.Panels {
		require.NotEmpty(t, p.Title)
		require.False(t, ids[p.ID], "panel id %d twice", p.ID)
		ids[p.ID] = true
		require.NotNil(t, p.GridPos, "%s: no gridPos", p.Title)
		require.True(t, p.GridPos.X >= 0 && p.GridPos.W > 0 && p.GridPos.X+p.GridPos.W <= 24, "%s: gridPos %+v", p.Title, *p.GridPos)
		if p.Type == "row" {
			continue
		}
		require.NotEmpty(t, p.Targets, "%s: no queries", p.Title)
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			require.False(t, refs[tg.RefID], "%s: refId %s twice", p.Title, tg.RefID)
			refs[tg.RefID] = true
			checkExpr(t, "panel "+p.Title, tg.Expr, doc)
			queries++
		}
	}
	require.Greater(t, queries, 20)
	for _, v := range dash.Templating.List {
		if v.Definition != "" {
			checkExpr(t, "variable "+v.Name, v.Definition, doc)
		}
	}
}
