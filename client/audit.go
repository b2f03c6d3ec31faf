package client

import (
	"context"
	"fmt"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// AuditEvent is one event of a tenant's audit trail (docs/OPERATIONS.md,
// Audit trail): when (the time carried by the change), who (an operator
// token's ID, a tenant token's ID, or "system" for the cluster's own
// changes), what (Kind: create, rename, state, limits, labels,
// token-minted, token-revoked, activate, suspend, cancel, restore, expire,
// export, refused-cross-tenant), and the before and after. Prev is the
// SHA-256 of the previous event's stored bytes, Hash this event's: the
// trail is a hash chain.
type AuditEvent struct {
	Seq    uint64
	At     time.Time
	Actor  string
	Kind   string
	Before string
	After  string
	Prev   []byte
	Hash   []byte
}

// AuditOptions selects the events TenantAudit returns. A nil
// *AuditOptions means all of them.
type AuditOptions struct {
	// Since, when not zero, skips the events before it.
	Since time.Time
	// Limit, when above zero, returns at most that many events.
	Limit int
}

// AuditVerdict is the check of a tenant's audit trail, as the answering
// node stores it.
type AuditVerdict struct {
	OK     bool
	Events uint64 // events checked
	// First and Last are the kept trail's extent; older events were
	// dropped after the cluster's audit retention.
	First, Last uint64
	// BadSeq is the first event that does not verify, and Reason why.
	BadSeq uint64
	Reason string
}

// TenantAudit returns the events of the tenant's audit trail, oldest
// first. An operator token may read every tenant's trail, a tenant token
// its own only (another name is refused as a missing tenant is).
func (db *DB) TenantAudit(ctx context.Context, name string, opts *AuditOptions) ([]AuditEvent, error) {
	var o AuditOptions
	if opts != nil {
		o = *opts
	}
	if o.Limit < 0 {
		return nil, fmt.Errorf("%w: negative limit", ErrInvalidArgument)
	}
	req := wire.Request{Op: wire.OpTenantAudit, Name: name}
	if !o.Since.IsZero() {
		req.Cursor = o.Since.UTC().Format(time.RFC3339Nano)
	}
	var out []AuditEvent
	for {
		req.Limit = 0
		if o.Limit > 0 {
			req.Limit = o.Limit - len(out)
		}
		var resp wire.Response
		if err := db.do(ctx, &req, &resp, true); err != nil {
			return nil, err
		}
		for _, e := range resp.Audit {
			out = append(out, AuditEvent(e))
		}
		if !resp.More || len(resp.Audit) == 0 || (o.Limit > 0 && len(out) >= o.Limit) {
			return out, nil
		}
		req.ReadVersion = resp.Audit[len(resp.Audit)-1].Seq
	}
}

// VerifyTenantAudit checks the tenant's audit trail: every kept event is
// there, in order, and names the hash of its predecessor. A trail that
// does not verify is a verdict with OK false, not an error.
func (db *DB) VerifyTenantAudit(ctx context.Context, name string) (*AuditVerdict, error) {
	var resp wire.Response
	if err := db.do(ctx, &wire.Request{Op: wire.OpTenantAudit, Name: name, State: "verify"}, &resp, true); err != nil {
		return nil, err
	}
	if resp.Verdict == nil {
		return nil, fmt.Errorf("%w: tenant-audit answer without a verdict", ErrInternal)
	}
	v := AuditVerdict(*resp.Verdict)
	return &v, nil
}
