package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// Tenant and token management, for operator tokens: the requests the CLI's
// `tenant` commands send (OpCreateTenant, OpListTenants, ...), through
// the same handle and its rules. A tenant token may read its own tenant's
// record (GET /v1/tenants/{its name}) and nothing else here: 403, as for
// any tenant not its own. States are passed through as the strings the
// admin requests parse (active, read-only, locked, ...).

// jsonLimits are a tenant's limits; 0 is unlimited (or the node's default).
type jsonLimits struct {
	MaxBytes       *uint64 `json:"max_bytes,omitempty"`
	MaxKeys        *uint64 `json:"max_keys,omitempty"`
	OpsPerSec      *uint64 `json:"ops_per_sec,omitempty"`
	Burst          *uint64 `json:"burst,omitempty"`
	MaxConcurrent  *uint64 `json:"max_concurrent,omitempty"`
	MaxWatches     *uint64 `json:"max_watches,omitempty"`
	MaxConnections *uint64 `json:"max_connections,omitempty"`
}

// jsonUsage is what a tenant uses and has done.
type jsonUsage struct {
	LogicalBytes uint64 `json:"logical_bytes"`
	Keys         uint64 `json:"keys"`
	DiskBytes    uint64 `json:"disk_bytes"`
	Reads        uint64 `json:"reads"`
	Writes       uint64 `json:"writes"`
	BytesRead    uint64 `json:"bytes_read"`
	BytesWritten uint64 `json:"bytes_written"`
	Throttled    uint64 `json:"throttled"`
	Errors       uint64 `json:"errors"`
}

// jsonTenant is a tenant's record.
type jsonTenant struct {
	ID        uint64            `json:"id"`
	Name      string            `json:"name"`
	State     string            `json:"state"`
	CreatedAt time.Time         `json:"created_at"`
	Limits    jsonLimits        `json:"limits"`
	Labels    map[string]string `json:"labels"`
	Usage     jsonUsage         `json:"usage"`
}

func tenantJSON(t *wire.TenantInfo) jsonTenant {
	l := t.Limits
	u := t.Usage
	labels := t.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return jsonTenant{
		ID: t.ID, Name: t.Name, State: t.State, CreatedAt: t.CreatedAt, Labels: labels,
		Limits: jsonLimits{MaxBytes: &l.MaxBytes, MaxKeys: &l.MaxKeys, OpsPerSec: &l.OpsPerSec, Burst: &l.Burst,
			MaxConcurrent: &l.MaxConcurrent, MaxWatches: &l.MaxWatches, MaxConnections: &l.MaxConnections},
		Usage: jsonUsage{LogicalBytes: u.LogicalBytes, Keys: u.Keys, DiskBytes: u.DiskBytes, Reads: u.Reads, Writes: u.Writes,
			BytesRead: u.BytesRead, BytesWritten: u.BytesWritten, Throttled: u.Throttled, Errors: u.Errors},
	}
}

// decodeJSONBody decodes a request body strictly into v; an empty body
// is an empty object.
func decodeJSONBody(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %v", ErrBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: body: more than one JSON value", ErrBadRequest)
	}
	return nil
}

// tenantBody is the body of POST /v1/tenants and PATCH /v1/tenants/{t}.
type tenantBody struct {
	Name   string             `json:"name"`     // create
	Rename string             `json:"new_name"` // update
	State  string             `json:"state"`    // update
	Limits *jsonLimits        `json:"limits"`
	Labels *map[string]string `json:"labels"`
}

func (b *tenantBody) config() *wire.TenantConfig {
	if b.Limits == nil && b.Labels == nil {
		return nil
	}
	cfg := &wire.TenantConfig{}
	if l := b.Limits; l != nil {
		cfg.MaxBytes, cfg.MaxKeys, cfg.OpsPerSec, cfg.Burst = l.MaxBytes, l.MaxKeys, l.OpsPerSec, l.Burst
		cfg.MaxConcurrent, cfg.MaxWatches, cfg.MaxConnections = l.MaxConcurrent, l.MaxWatches, l.MaxConnections
	}
	if b.Labels != nil {
		cfg.Labels, cfg.ReplaceLabels = *b.Labels, true
	}
	return cfg
}

func (a *httpAPI) listTenants(ctx context.Context, w http.ResponseWriter, ar *apiRequest) error {
	limit, err := queryUint(ar.query, "limit")
	if err != nil {
		return err
	}
	if limit > maxListPage {
		return fmt.Errorf("%w: limit %d, at most %d", ErrBadRequest, limit, maxListPage)
	}
	resp, err := a.answer(ctx, ar, &wire.Request{Op: wire.OpListTenants, State: ar.query.Get("state"),
		After: ar.query.Get("after"), Limit: int(limit)})
	if err != nil {
		return err
	}
	out := struct {
		Tenants []jsonTenant `json:"tenants"`
		Next    string       `json:"next,omitempty"`
	}{Tenants: make([]jsonTenant, 0, len(resp.Tenants)), Next: resp.Next}
	for i := range resp.Tenants {
		out.Tenants = append(out.Tenants, tenantJSON(&resp.Tenants[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *httpAPI) createTenant(ctx context.Context, w http.ResponseWriter, ar *apiRequest) error {
	var b tenantBody
	if err := decodeJSONBody(ar.body, &b); err != nil {
		return err
	}
	if b.Rename != "" || b.State != "" {
		return fmt.Errorf("%w: a new tenant takes name, limits and labels", ErrBadRequest)
	}
	resp, err := a.answer(ctx, ar, &wire.Request{Op: wire.OpCreateTenant, Name: b.Name, Config: b.config()})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, tenantJSON(resp.Tenant))
	return nil
}

func (a *httpAPI) getTenant(ctx context.Context, w http.ResponseWriter, ar *apiRequest) error {
	resp, err := a.answer(ctx, ar, &wire.Request{Op: wire.OpGetTenant, Name: ar.rt.tenant})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tenantJSON(resp.Tenant))
	return nil
}

func (a *httpAPI) updateTenant(ctx context.Context, w http.ResponseWriter, ar *apiRequest) error {
	var b tenantBody
	if err := decodeJSONBody(ar.body, &b); err != nil {
		return err
	}
	if b.Name != "" {
		return fmt.Errorf("%w: rename with new_name", ErrBadRequest)
	}
	resp, err := a.answer(ctx, ar, &wire.Request{Op: wire.OpUpdateTenant, Name: ar.rt.tenant, NewName: b.Rename,
		State: b.State, Config: b.config()})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tenantJSON(resp.Tenant))
	return nil
}

func (a *httpAPI) deleteTenant(ctx context.Context, w http.ResponseWriter, ar *apiRequest) error {
	if _, err := a.answer(ctx, ar, &wire.Request{Op: wire.OpDeleteTenant, Name: ar.rt.tenant}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// jsonToken describes a token, never its secret.
type jsonToken struct {
	ID        string     `json:"id"`
	Tenant    string     `json:"tenant"`
	ReadOnly  bool       `json:"read_only"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

func (a *httpAPI) listTokens(ctx context.Context, w http.ResponseWriter, ar *apiRequest) error {
	resp, err := a.answer(ctx, ar, &wire.Request{Op: wire.OpListTokens, Name: ar.rt.tenant})
	if err != nil {
		return err
	}
	out := struct {
		Tokens []jsonToken `json:"tokens"`
	}{Tokens: make([]jsonToken, 0, len(resp.Tokens))}
	for _, t := range resp.Tokens {
		j := jsonToken{ID: t.ID, Tenant: t.Tenant, ReadOnly: t.ReadOnly, CreatedAt: t.CreatedAt}
		if !t.ExpiresAt.IsZero() {
			x := t.ExpiresAt
			j.ExpiresAt = &x
		}
		out.Tokens = append(out.Tokens, j)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// tokenBody is the body of POST /v1/tenants/{t}/tokens.
type tokenBody struct {
	ReadOnly   bool  `json:"read_only"`
	TTLSeconds int64 `json:"ttl_seconds"` // 0: no expiry
}

func (a *httpAPI) newToken(ctx context.Context, w http.ResponseWriter, ar *apiRequest) error {
	var b tokenBody
	if err := decodeJSONBody(ar.body, &b); err != nil {
		return err
	}
	if b.TTLSeconds < 0 || b.TTLSeconds > int64((100*365*24*time.Hour)/time.Second) {
		return fmt.Errorf("%w: ttl_seconds %d", ErrBadRequest, b.TTLSeconds)
	}
	if !ar.p.operator {
		return ErrPermissionDenied // OpNewToken without a tenant would be an operator token
	}
	resp, err := a.answer(ctx, ar, &wire.Request{Op: wire.OpNewToken, Name: ar.rt.tenant, ReadOnly: b.ReadOnly,
		TTL: time.Duration(b.TTLSeconds) * time.Second})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}{resp.TokenID, resp.Token})
	return nil
}

// revokeToken revokes a token of the tenant in the path: a token of
// another tenant, or an operator's, is not found here.
func (a *httpAPI) revokeToken(ctx context.Context, w http.ResponseWriter, ar *apiRequest) error {
	list, err := a.answer(ctx, ar, &wire.Request{Op: wire.OpListTokens, Name: ar.rt.tenant})
	if err != nil {
		return err
	}
	found := false
	for _, t := range list.Tokens {
		found = found || t.ID == ar.rt.token
	}
	if !found {
		return &wireError{resp: &wire.Response{Code: wire.CodeTokenNotFound, Msg: fmt.Sprintf("tenant %q has no token %q", ar.rt.tenant, ar.rt.token)}}
	}
	if _, err := a.answer(ctx, ar, &wire.Request{Op: wire.OpRevokeToken, Name: ar.rt.token}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
