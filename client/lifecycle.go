package client

import (
	"context"
	"fmt"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// The tenant lifecycle (docs/OPERATIONS.md, Lifecycle):
//
//	trial ──activate──▶ active ◀──activate── suspended
//	trial ──suspend, or the trial ends──▶ suspended ◀──suspend── active
//	trial, active, suspended ──cancel──▶ cancelled ──restore──▶ suspended
//	cancelled ──the retention ends──▶ purged
//
// Each call needs an operator token. The cluster decides the transition
// when it applies it; one the tenant's state does not allow is an error
// matching ErrInvalidArgument whose message names the allowed ones, and
// changes nothing. An unknown name matches ErrTenantNotFound. An error
// matching ErrCommitUnknown means the action may or may not have applied:
// read the tenant (TenantInfo) before asking again.

// DefaultRetention is how long `tenantkv tenant cancel` keeps a cancelled
// tenant's data when no --retention is given.
const DefaultRetention = 90 * 24 * time.Hour

// ActivateTenant makes a trial or suspended tenant active.
func (db *DB) ActivateTenant(ctx context.Context, name string) (*TenantInfo, error) {
	return db.lifecycle(ctx, name, "activate", 0)
}

// SuspendTenant makes a trial or active tenant suspended: reads are
// served, writes refused.
func (db *DB) SuspendTenant(ctx context.Context, name string) (*TenantInfo, error) {
	return db.lifecycle(ctx, name, "suspend", 0)
}

// CancelTenant cancels a trial, active or suspended tenant: every data
// operation and every token of the tenant is refused, but its data, tokens
// and record are kept for retention, after which the cluster purges it
// (TenantInfo.PurgeAt). A zero retention purges it at once, as
// DeleteTenant does, and returns a nil *TenantInfo.
func (db *DB) CancelTenant(ctx context.Context, name string, retention time.Duration) (*TenantInfo, error) {
	if retention < 0 {
		return nil, fmt.Errorf("%w: negative retention %v", ErrInvalidArgument, retention)
	}
	return db.lifecycle(ctx, name, "cancel", retention)
}

// RestoreTenant brings a cancelled tenant back, suspended (activate it
// to allow writes), with its data and tokens, any time before its
// retention ends.
func (db *DB) RestoreTenant(ctx context.Context, name string) (*TenantInfo, error) {
	return db.lifecycle(ctx, name, "restore", 0)
}

func (db *DB) lifecycle(ctx context.Context, name, action string, retention time.Duration) (*TenantInfo, error) {
	var resp wire.Response
	req := wire.Request{Op: wire.OpTenantLifecycle, Name: name, State: action, TTL: retention}
	if err := db.do(ctx, &req, &resp, false); err != nil {
		return nil, err
	}
	if resp.Tenant == nil {
		if action == "cancel" && retention == 0 {
			return nil, nil // purged
		}
		return nil, fmt.Errorf("%w: tenant-lifecycle answer without a tenant", ErrInternal)
	}
	return tenantInfoOf(resp.Tenant), nil
}
