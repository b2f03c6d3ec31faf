package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/tenantkv/tenantkv/client"
)

// TestSummarize records known latencies and checks the percentiles, within
// the histogram's precision of three significant digits.
func TestSummarize(t *testing.T) {
	h := newHist()
	for v := int64(1); v <= 10_000; v++ {
		if err := h.RecordValue(v); err != nil {
			t.Fatal(err)
		}
	}
	l := Summarize(h)
	near := func(name string, got, want int64) {
		t.Helper()
		if d := got - want; d < -want/500-1 || d > want/500+1 {
			t.Errorf("%s = %d, want %d ± 0.2%%", name, got, want)
		}
	}
	near("p50", l.P50, 5000)
	near("p90", l.P90, 9000)
	near("p99", l.P99, 9900)
	near("p99.9", l.P999, 9990)
	near("max", l.Max, 10_000)
	if l.Mean < 5000 || l.Mean > 5001 {
		t.Errorf("mean = %v, want 5000.5", l.Mean)
	}
	if (Summarize(newHist()) != Latency{}) {
		t.Error("an empty histogram has a non-zero summary")
	}

	curve := PercentileCurve(h)
	if len(curve) < 10 || curve[0].Percentile != 0 || curve[len(curve)-1].Percentile != 100 {
		t.Fatalf("curve from %v to %v, %d points", curve[0], curve[len(curve)-1], len(curve))
	}
	for i := 1; i < len(curve); i++ {
		if curve[i].Percentile <= curve[i-1].Percentile || curve[i].US < curve[i-1].US {
			t.Fatalf("curve not increasing at %d: %v then %v", i, curve[i-1], curve[i])
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		kind OpKind
		err  error
		want string
	}{
		{OpRead, nil, ""},
		{OpRead, client.ErrNotFound, ""},
		{OpRead, &client.Error{Code: 6}, ""}, // a server's "not found", matched by its code
		{OpUpdate, client.ErrNotFound, "not found"},
		{OpUpdate, fmt.Errorf("wrapped: %w", client.ErrRateLimited), classRateLimited},
		{OpUpdate, fmt.Errorf("%w: connection reset", client.ErrCommitUnknown), "commit result unknown"},
		{OpScan, client.ErrUnavailable, "unavailable"},
		{OpRead, context.DeadlineExceeded, "deadline exceeded"},
		{OpRead, errors.New("something strange happened"), "other: something strange happened"},
	}
	for _, tt := range tests {
		if got := classify(tt.kind, tt.err); got != tt.want {
			t.Errorf("classify(%s, %v) = %q, want %q", tt.kind, tt.err, got, tt.want)
		}
	}
}

// sampleReport is a report of two scenarios with made-up but consistent
// runs, one with errors, several tenants and odd characters in its name.
func sampleReport() *Report {
	r := NewReport([]string{"tenantkv", "bench", "all", "--json", "out.json"})
	mk := func(name, series string, clients int, base int64) *Result {
		h := newHist()
		for i := range int64(1000) {
			_ = h.RecordValue(base + i)
		}
		res := &Result{Name: name, Series: series, Target: "local, 1 node",
			Params: Params{Workload: "A", Clients: clients, Tenants: 3},
			Ops:    1000, Throughput: float64(1000 * clients), DurationSec: 1,
			Latency: Summarize(h), Curve: PercentileCurve(h),
			Errors: map[string]int64{}, OpsByKind: map[string]int64{"read": 500, "update": 500},
			PerSecond:  []Second{{AtSec: 1, Ops: 500, OpsPerSec: 500}, {AtSec: 2, Ops: 500, OpsPerSec: 520}},
			TopTenants: []TenantStat{{Name: "a", Ops: 600, Share: 0.6}, {Name: "b", Ops: 400, Share: 0.4}},
			hist:       h}
		return res
	}
	s1 := &ScenarioResult{Name: "cluster", Description: "Sweep <1 & 3> \"nodes\"", Target: "local, 1 node"}
	for _, c := range []int{1, 4, 16} {
		s1.Runs = append(s1.Runs, mk(fmt.Sprintf("W, %d clients", c), "W", c, int64(100*c)))
	}
	s1.Runs[1].Errors["unavailable"] = 3
	s1.Runs[1].ErrorCount = 3
	s1.Runs[2].RateLimited = 7
	s1.Add("ratio", 0.98765, "x")
	s1.Note("a note with <tags> & ampersands")
	s1.Finish()
	s2 := &ScenarioResult{Name: "empty", Description: "no runs"}
	s2.Finish()
	r.Scenarios = []*ScenarioResult{s1, s2}
	return r
}

// TestJSONSchema checks that the keys tools rely on are in the JSON report.
func TestJSONSchema(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	requireKeys(t, "report", doc, "schema", "date", "command_line", "machine", "scenarios", "elapsed_sec")
	requireKeys(t, "machine", doc["machine"].(map[string]any), "goos", "goarch", "num_cpu", "go_version")
	scenarios := doc["scenarios"].([]any)
	sc := scenarios[0].(map[string]any)
	requireKeys(t, "scenario", sc, "name", "description", "target", "throughput_ops_per_sec", "latency_us", "errors", "figures", "notes", "runs")
	requireKeys(t, "scenario latency", sc["latency_us"].(map[string]any), "p50", "p90", "p99", "p999", "max")
	if errs := sc["errors"].(map[string]any); errs["unavailable"] != 3.0 || errs[classRateLimited] != 7.0 {
		t.Errorf("scenario errors = %v, want the runs' errors and rate-limited operations", errs)
	}
	run := sc["runs"].([]any)[0].(map[string]any)
	requireKeys(t, "run", run, "name", "workload", "throughput_ops_per_sec", "latency_us", "errors",
		"rate_limited", "not_found", "ops", "duration_sec", "per_second", "percentile_curve_us", "top_tenants", "setup")
	requireKeys(t, "run latency", run["latency_us"].(map[string]any), "p50", "p90", "p99", "p999", "max")
	requireKeys(t, "run workload", run["workload"].(map[string]any), "workload", "keys", "key_size", "value_size",
		"tenants", "tenant_skew", "key_dist", "clients", "conns", "duration_sec", "warmup_sec")
	if empty := scenarios[1].(map[string]any); empty["errors"] == nil {
		t.Error("a scenario without runs has no errors object")
	}
}

func requireKeys(t *testing.T, what string, m map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("%s: no key %q", what, k)
		}
	}
}

// TestHTMLWellFormed checks that the HTML report parses as XML, has its
// plots inline and fetches nothing.
func TestHTMLWellFormed(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	d := xml.NewDecoder(strings.NewReader(page))
	d.Strict = true
	var stack []string
	svgs := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			stack = append(stack, tok.Name.Local)
			if tok.Name.Local == "svg" {
				svgs++
			}
			for _, a := range tok.Attr {
				if (a.Name.Local == "src" || a.Name.Local == "href") && strings.Contains(a.Value, "//") {
					t.Errorf("<%s %s=%q> loads from the network", tok.Name.Local, a.Name.Local, a.Value)
				}
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) != 0 {
		t.Errorf("unclosed elements: %v", stack)
	}
	// Two bars, percentiles, time series and the client sweep for the
	// scenario; the comparison of all runs at the top.
	if svgs < 6 {
		t.Errorf("%d SVG plots, want at least 6", svgs)
	}
	for _, bad := range []string{"<script", "@import", "url("} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	for _, want := range []string{"<svg", "Latency by percentile", "Throughput over time", "Throughput by concurrency",
		"a note with &lt;tags&gt; &amp; ampersands", "W, 16 clients"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestWriteText(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"== cluster (local, 1 node)", "ops/s", "p99.9 µs", "W, 4 clients",
		"ratio", "0.9877 x", "unavailable 3", "busiest tenants", "note: a note"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
