package main

import (
	"errors"
	"strings"
	"testing"
)

// The serve flags of hardening issue 18's smaller gaps: --debug,
// --metrics-tenant-labels and --shutdown-timeout, from the command line or
// the environment.
func TestServeDebugMetricsShutdownFlags(t *testing.T) {
	cfg, err := serveConfig(t, envMap())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Debug || cfg.MetricsTenantLabels {
		t.Errorf("defaults: debug %v, metrics tenant labels %v; want both off", cfg.Debug, cfg.MetricsTenantLabels)
	}
	cfg, err = serveConfig(t, envMap("TENANTKV_DEBUG", "true", "TENANTKV_METRICS_TENANT_LABELS", "1"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Debug || !cfg.MetricsTenantLabels {
		t.Errorf("from the environment: debug %v, metrics tenant labels %v", cfg.Debug, cfg.MetricsTenantLabels)
	}
	cfg, err = serveConfig(t, envMap("TENANTKV_DEBUG", "true"), "--debug=false", "--metrics-tenant-labels")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Debug || !cfg.MetricsTenantLabels {
		t.Errorf("flags over the environment: debug %v, metrics tenant labels %v", cfg.Debug, cfg.MetricsTenantLabels)
	}
	var ue *usageError
	if _, err := serveConfig(t, envMap("TENANTKV_DEBUG", "maybe")); !errors.As(err, &ue) || !strings.Contains(err.Error(), `TENANTKV_DEBUG: "maybe" is not true or false`) {
		t.Errorf("bad TENANTKV_DEBUG: %v", err)
	}
	if _, err := serveConfig(t, envMap("TENANTKV_SHUTDOWN_TIMEOUT", "soon")); !errors.As(err, &ue) || !strings.Contains(err.Error(), "TENANTKV_SHUTDOWN_TIMEOUT") {
		t.Errorf("bad TENANTKV_SHUTDOWN_TIMEOUT: %v", err)
	}
	if _, err := serveConfig(t, envMap(), "--shutdown-timeout", "0s"); !errors.As(err, &ue) || !strings.Contains(err.Error(), "--shutdown-timeout") {
		t.Errorf("--shutdown-timeout 0s: %v", err)
	}
}
