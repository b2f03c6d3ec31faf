package main

import (
	"os"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/bench"
)

// TestEtcdRun starts a one-member etcd cluster and measures a short
// workload A on it. It needs an etcd binary: set ETCDBENCH_ETCD_BIN (run.sh
// builds one into ${XDG_CACHE_HOME:-$HOME/.cache}/tenantkv/etcd-v3.6.16/etcd).
func TestEtcdRun(t *testing.T) {
	bin := os.Getenv("ETCDBENCH_ETCD_BIN")
	if bin == "" {
		t.Skip("ETCDBENCH_ETCD_BIN not set")
	}
	dir := t.TempDir()
	ec, err := startEtcd(t.Context(), etcdOptions{Binary: bin, Members: 1, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ec.Close() })
	cfg := bench.Config{Name: "A", Workload: bench.WorkloadA, Keys: 100, KeySize: 16, ValueSize: 128,
		Tenants: 1, Clients: 4, Conns: 2, Duration: time.Second, Warmup: -1, Seed: 1, LoadConcurrency: 8}
	res, err := runEtcd(t.Context(), etcdTarget{Endpoints: ec.Endpoints(), Description: "test"}, cfg, etcdRunOptions{Load: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops == 0 || res.ErrorCount != 0 || res.NotFound != 0 || res.Setup.KeysLoaded != 100 {
		t.Errorf("ops %d, errors %v, not found %d, loaded %d: want ops, no errors, every key found, 100 loaded",
			res.Ops, res.Errors, res.NotFound, res.Setup.KeysLoaded)
	}
	if res.OpsByKind["read"] == 0 || res.OpsByKind["update"] == 0 || res.Latency.P99 == 0 || len(res.PerSecond) == 0 {
		t.Errorf("result incomplete: %+v", res)
	}
	if err := ec.Close(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("Close left %d entries in %s", len(ents), dir)
	}
}
