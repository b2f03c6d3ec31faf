package server

import (
	"testing"

	"github.com/tenantkv/tenantkv/internal/wire"
)

func TestDefaultMaxConnectionsKeepsAReserve(t *testing.T) {
	for _, c := range []struct{ nofile, want uint64 }{
		{0, DefaultMaxConnections},
		{1024, 1024 - 256 - OperatorConnReserve},
		{20_000, DefaultMaxConnections},
		{200, 16},
		{1 << 20, DefaultMaxConnections},
	} {
		if got := defaultMaxConnections(c.nofile); got != c.want {
			t.Errorf("RLIMIT_NOFILE %d: default MaxConnections %d, want %d", c.nofile, got, c.want)
		}
		if c.nofile > 300 && defaultMaxConnections(c.nofile)+OperatorConnReserve+128 > c.nofile {
			t.Errorf("RLIMIT_NOFILE %d: no descriptors left in reserve", c.nofile)
		}
	}
}

func TestConfigConnLimits(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{}, true},
		{"conn memory below two frames", Config{MaxConnMemory: wire.DefaultMaxFrame}, false},
		{"budget below conn memory", Config{MaxConnMemory: 64 << 20, MemoryBudget: 40 << 20}, false},
		{"negative idle timeout", Config{IdleTimeout: -1}, false},
		{"per-tenant above node", Config{MaxConnections: 10, MaxConnectionsPerTenant: 11}, false},
		{"small budget", Config{MemoryBudget: 48 << 20}, true},
	} {
		err := c.cfg.Validate()
		if (err == nil) != c.ok {
			t.Errorf("%s: Validate = %v", c.name, err)
		}
	}
	cfg := Config{MemoryBudget: 48 << 20}
	cfg.setDefaults()
	if cfg.MaxConnMemory > cfg.MemoryBudget || cfg.MaxConnMemory < 2*int64(cfg.MaxFrame) {
		t.Errorf("defaults: MaxConnMemory %d with MemoryBudget %d", cfg.MaxConnMemory, cfg.MemoryBudget)
	}
	if cfg.MaxConnectionsPerTenant == 0 || cfg.MaxConnectionsPerTenant > cfg.MaxConnections || cfg.IdleTimeout != DefaultIdleTimeout {
		t.Errorf("defaults: %+v", cfg)
	}
}
