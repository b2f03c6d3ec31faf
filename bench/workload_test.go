package bench

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestWorkloadMix draws operations of every workload and checks their
// shares.
func TestWorkloadMix(t *testing.T) {
	tests := []struct {
		w                  Workload
		read, update, scan float64
	}{
		{WorkloadA, 0.5, 0.5, 0},
		{WorkloadB, 0.95, 0.05, 0},
		{WorkloadC, 1, 0, 0},
		{WorkloadE, 0, 0.05, 0.95},
		{WorkloadW, 0, 1, 0},
	}
	for _, tt := range tests {
		t.Run(string(tt.w), func(t *testing.T) {
			m, err := tt.w.Mix()
			if err != nil {
				t.Fatal(err)
			}
			if s := m.Read + m.Update + m.Scan; math.Abs(s-1) > 1e-9 {
				t.Fatalf("shares add up to %v", s)
			}
			rng := rand.New(rand.NewPCG(1, 1))
			const n = 200_000
			var counts [numOpKinds]int
			for range n {
				counts[m.pick(rng.Float64())]++
			}
			for k, want := range map[OpKind]float64{OpRead: tt.read, OpUpdate: tt.update, OpScan: tt.scan} {
				got := float64(counts[k]) / n
				if math.Abs(got-want) > 0.005 {
					t.Errorf("%s: %.4f of operations, want %.2f", k, got, want)
				}
			}
		})
	}
}

func TestParseWorkload(t *testing.T) {
	if w, err := ParseWorkload("e"); err != nil || w != WorkloadE {
		t.Errorf("ParseWorkload(e) = %q, %v", w, err)
	}
	if _, err := ParseWorkload("D"); err == nil {
		t.Error("ParseWorkload(D) succeeded; D is not a workload here")
	}
	if d, err := ParseDistribution("Zipf"); err != nil || d != Zipf {
		t.Errorf("ParseDistribution(Zipf) = %q, %v", d, err)
	}
	if _, err := ParseDistribution("latest"); err == nil {
		t.Error("ParseDistribution(latest) succeeded")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		want string // "" for valid
	}{
		{"zero", Config{}, ""},
		{"full", Config{Workload: WorkloadE, Keys: 10, Tenants: 100_000, Clients: 256, Conns: 8, TenantSkew: Zipf}, ""},
		{"workload", Config{Workload: "X"}, "unknown workload"},
		{"distribution", Config{KeyDist: "latest"}, "unknown distribution"},
		{"negative", Config{Clients: -1}, "negative"},
		{"tenants", Config{Tenants: MaxTenants + 1}, "tenants"},
		{"conns", Config{Clients: 2, Conns: 3}, "connections"},
		{"value", Config{ValueSize: 1 << 20}, "value size"},
		{"key size", Config{Keys: 1_000_000, KeySize: 4}, "key size"},
		{"prefix", Config{TenantPrefix: strings.Repeat("a", 60)}, "prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.Workload != WorkloadA || c.Keys != 100_000 || c.KeySize != 16 || c.ValueSize != 128 ||
		c.Tenants != 1 || c.Clients != 16 || c.Conns != 4 || c.Duration != 10*time.Second ||
		c.Warmup != 2*time.Second || c.MaxScan != 100 {
		t.Errorf("defaults: %+v", c)
	}
	if c := (Config{Ops: 100}).withDefaults(); c.Duration != 0 {
		t.Errorf("with Ops set, Duration defaults to %v, want 0 (until done)", c.Duration)
	}
	if c := (Config{Warmup: -1}).withDefaults(); c.Warmup != 0 {
		t.Errorf("negative Warmup became %v, want 0 (none)", c.Warmup)
	}
}

func TestKeys(t *testing.T) {
	if k := string(Key(42, 16)); k != "k000000000000042" {
		t.Errorf("Key(42, 16) = %q", k)
	}
	if k := string(Key(7, 2)); k != "k7" {
		t.Errorf("Key(7, 2) = %q", k)
	}
	for i := range 999 {
		if bytes.Compare(Key(i, 8), Key(i+1, 8)) >= 0 {
			t.Fatalf("Key(%d) does not sort before Key(%d)", i, i+1)
		}
	}
	if n := TenantName("iso-", 12); n != "iso-000012" {
		t.Errorf("TenantName = %q", n)
	}
}

// TestKeySpace checks what a run pre-generates: keys per tenant, one value
// of the right size, the tenant names.
func TestKeySpace(t *testing.T) {
	c := Config{Keys: 1000, Tenants: 3, ValueSize: 64, KeySize: 10, TenantPrefix: "t-"}.withDefaults()
	ks, err := newKeySpace(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks.keys) != 334 || len(ks.value) != 64 || len(ks.tenants) != 3 || ks.tenants[2] != "t-000002" {
		t.Errorf("keys %d, value %d bytes, tenants %v", len(ks.keys), len(ks.value), ks.tenants)
	}
	for _, k := range ks.keys {
		if len(k) != 10 || cap(k) != 10 {
			t.Fatalf("key %q: len %d cap %d", k, len(k), cap(k))
		}
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for range 1000 {
		if i := ks.keyDist.next(rng); i >= uint64(len(ks.keys)) {
			t.Fatalf("key index %d out of range", i)
		}
		if i := ks.tenDist.next(rng); i >= 3 {
			t.Fatalf("tenant index %d out of range", i)
		}
	}
}

// TestChoiceDoesNotAllocate checks that choosing an operation, its tenant
// and its key in the measured loop allocates nothing.
func TestChoiceDoesNotAllocate(t *testing.T) {
	c := Config{Keys: 10_000, Tenants: 100, TenantSkew: Zipf, KeyDist: Zipf}.withDefaults()
	ks, err := newKeySpace(c)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	var sink int
	allocs := testing.AllocsPerRun(1000, func() {
		ti := ks.tenDist.next(rng)
		key := ks.keys[ks.keyDist.next(rng)]
		kind := ks.mix.pick(rng.Float64())
		sink += int(ti) + len(key) + int(kind)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per choice, want 0", allocs)
	}
	_ = sink
}
