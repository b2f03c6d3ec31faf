package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tenantkv/tenantkv/bench"
)

func result(name string, ops float64, p99 int64) *bench.Result {
	return &bench.Result{Name: name, Throughput: ops, Latency: bench.Latency{P99: p99}, Errors: map[string]int64{}}
}

func TestCompareAndTargets(t *testing.T) {
	W, C, A := bench.WorkloadW, bench.WorkloadC, bench.WorkloadA
	res := map[point]*bench.Result{
		{sysTenantKV, 3, W, 16}:  result("tk W16", 20_000, 900),
		{sysEtcd, 3, W, 16}:      result("etcd W16", 10_000, 1000),
		{sysTenantKV, 3, W, 128}: result("tk W128", 30_000, 5000),
		{sysEtcd, 3, W, 128}:     result("etcd W128", 10_000, 4000),
		{sysTenantKV, 3, W, 1}:   result("tk W1", 100, 50_000),
		{sysEtcd, 3, W, 1}:       result("etcd W1", 1000, 2000),
		{sysTenantKV, 3, C, 16}:  result("tk C16", 15_000, 100),
		{sysEtcd, 3, C, 16}:      result("etcd C16", 10_000, 100),
		{sysTenantKV, 3, A, 16}:  result("tk A16", 1, 1),
		{sysEtcd, 3, A, 16}:      result("etcd A16", 1, 1),
		{sysTenantKV, 1, C, 16}:  result("tk C16 1n", 40_000, 100),
	}
	cmps := compare(res, nil, []int{1, 3}, []bench.Workload{W, C, A}, []int{1, 16, 128}, 4)
	if len(cmps) != 6 {
		t.Fatalf("%d comparisons, want 6: %+v", len(cmps), cmps)
	}
	if c := cmps[0]; c.Nodes != 1 || c.Etcd != nil || c.ThroughputRatio != 0 {
		t.Errorf("a point measured on one side only: %+v", c)
	}
	byName := map[string]TargetCheck{}
	for _, tc := range checkTargets(cmps) {
		byName[tc.Name] = tc
	}
	tests := []struct {
		name      string
		met       bool
		shortfall string
	}{
		{"W, 3 nodes, 16 clients", true, ""},
		{"W, 3 nodes, 128 clients", false, "p99 1.25× etcd's (5,000 µs against 4,000 µs)"},
		{"C, 3 nodes, 16 clients", false, "throughput 1.50× etcd, target 2×: 33% more needed (15,000 ops/s for 20,000)"},
	}
	for _, tt := range tests {
		tc, ok := byName[tt.name]
		if !ok {
			t.Errorf("no check %q among %v", tt.name, byName)
			continue
		}
		if tc.Met != tt.met || tc.Shortfall != tt.shortfall || !tc.Binding {
			t.Errorf("%s: met %v, shortfall %q, binding %v; want %v, %q, true", tt.name, tc.Met, tc.Shortfall, tc.Binding, tt.met, tt.shortfall)
		}
	}
	if len(byName) != 3 {
		t.Errorf("checks %v: W at 1 client and A are not targets, and 1 node has no pair", byName)
	}

	var out bytes.Buffer
	if err := writeTable(&out, cmps, checkTargets(cmps)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"20,000", "2.00×", "MISSED: p99 1.25×", "C, 3 nodes, 16 clients"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestReportJSON(t *testing.T) {
	r := &Report{Report: bench.NewReport([]string{"etcdbench"}),
		Comparisons: []Comparison{{Nodes: 1, Workload: "W", Clients: 16,
			TenantKV: sideOf(result("a", 2, 3), 0.5), Etcd: sideOf(result("b", 1, 3), 0.7), ThroughputRatio: 2, P99Ratio: 1}}}
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema", "machine", "scenarios", "comparisons", "targets"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, b.String())
		}
	}
	side := m["comparisons"].([]any)[0].(map[string]any)["tenantkv"].(map[string]any)
	for _, k := range []string{"throughput_ops_per_sec", "latency_us", "errors"} {
		if _, ok := side[k]; !ok {
			t.Errorf("no %q in a side: %v", k, side)
		}
	}
}

func TestWorkload(t *testing.T) {
	cfg := bench.Config{Workload: bench.WorkloadA, Keys: 1000, KeySize: 16, ValueSize: 128, Tenants: 1, Seed: 7}
	w, err := newWorkload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.keys) != 1000 || w.keys[42] != string(bench.Key(42, 16)) || len(w.value) != 128 {
		t.Fatalf("keys or value wrong: %d keys, key 42 %q, value of %d bytes", len(w.keys), w.keys[42], len(w.value))
	}
	w2, _ := newWorkload(cfg)
	if w.value != w2.value {
		t.Error("the value depends on more than the seed")
	}
	r1, r2 := rand.New(rand.NewPCG(7, 1)), rand.New(rand.NewPCG(7, 1))
	var reads int
	for range 10_000 {
		k1, o1 := w.next(r1)
		k2, o2 := w.next(r2)
		if k1 != k2 || o1 != o2 {
			t.Fatal("the same seed drew different operations")
		}
		if o1 == bench.OpScan {
			t.Fatal("workload A drew a scan")
		}
		if o1 == bench.OpRead {
			reads++
		}
	}
	if reads < 4700 || reads > 5300 {
		t.Errorf("%d reads of 10,000 in workload A", reads)
	}
	for _, tc := range []struct {
		w    bench.Workload
		want bench.OpKind
	}{{bench.WorkloadW, bench.OpUpdate}, {bench.WorkloadC, bench.OpRead}} {
		cfg.Workload = tc.w
		w, _ := newWorkload(cfg)
		for range 1000 {
			if _, o := w.next(r1); o != tc.want {
				t.Fatalf("workload %s drew %v", tc.w, o)
			}
		}
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args []string
		ok   bool
	}{
		{[]string{"--etcd-binary", "x"}, true},
		{[]string{"--systems", "tenantkv"}, true},
		{[]string{}, false}, // etcd without a binary
		{[]string{"--etcd-binary", "x", "--workloads", "E"}, false},
		{[]string{"--etcd-binary", "x", "--clients", "0"}, false},
		{[]string{"--etcd-binary", "x", "--systems", "redis"}, false},
		{[]string{"--etcd-binary", "x", "--duration", "0s"}, false},
		{[]string{"--etcd-binary", "x", "extra"}, false},
	}
	for _, tt := range tests {
		_, err := parseFlags(tt.args, io.Discard)
		if (err == nil) != tt.ok {
			t.Errorf("parseFlags(%q): %v, want ok %v", tt.args, err, tt.ok)
		}
	}
	if _, err := parseFlags([]string{"--help"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
}

func TestClassifyEtcd(t *testing.T) {
	if got := classifyEtcd(errors.New(strings.Repeat("x", 100))); !strings.HasPrefix(got, "other: ") || len(got) > 80 {
		t.Errorf("classifyEtcd of a long error: %q", got)
	}
}
