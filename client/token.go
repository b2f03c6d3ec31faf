package client

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// TokenOptions narrow a new token. A nil *TokenOptions means a read-write
// token that never expires.
type TokenOptions struct {
	// ReadOnly tenant tokens may read but not write; every write is refused
	// with ErrPermissionDenied. (On an operator token it refuses writes of
	// keys, not administration: do not rely on it there.)
	ReadOnly bool
	// TTL, when positive, makes the token expire that long after it is
	// created: from then on every request with it, on a connection already
	// open too, is refused with ErrPermissionDenied. Zero: no expiry.
	TTL time.Duration
}

// TokenInfo describes a token, never its secret.
type TokenInfo struct {
	ID        string // what RevokeToken takes; also part of the token itself
	Tenant    string // the tenant it is bound to; "" for operator tokens
	ReadOnly  bool
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
}

// NewToken creates a token and returns its secret, shown only this once,
// and its ID, which ListTokens shows and RevokeToken takes. A non-empty
// tenant binds the token to that tenant; an empty tenant makes a new
// OPERATOR token, which can do everything the caller's can. It needs an
// operator token. An error matching ErrCommitUnknown means the token may
// have been created; list the tenant's tokens and revoke what you cannot
// account for.
func (db *DB) NewToken(ctx context.Context, tenant string, opts *TokenOptions) (secret, id string, err error) {
	var o TokenOptions
	if opts != nil {
		o = *opts
	}
	if o.TTL < 0 {
		return "", "", fmt.Errorf("%w: negative TTL %v", ErrInvalidArgument, o.TTL)
	}
	var resp wire.Response
	req := wire.Request{Op: wire.OpNewToken, Name: tenant, ReadOnly: o.ReadOnly, TTL: o.TTL}
	if err := db.do(ctx, &req, &resp, false); err != nil {
		return "", "", err
	}
	if resp.Token == "" || resp.TokenID == "" {
		return "", "", fmt.Errorf("%w: new-token answer without a token", ErrInternal)
	}
	return resp.Token, resp.TokenID, nil
}

// ListTokens returns the tokens bound to the tenant, in ID order, without
// their secrets. Expired tokens are listed until they are revoked. It needs
// an operator token.
func (db *DB) ListTokens(ctx context.Context, tenant string) ([]TokenInfo, error) {
	if tenant == "" {
		return nil, fmt.Errorf("%w: empty tenant name", ErrInvalidName)
	}
	var resp wire.Response
	if err := db.do(ctx, &wire.Request{Op: wire.OpListTokens, Name: tenant}, &resp, true); err != nil {
		return nil, err
	}
	out := make([]TokenInfo, len(resp.Tokens))
	for i, t := range resp.Tokens {
		out[i] = TokenInfo{ID: t.ID, Tenant: t.Tenant, ReadOnly: t.ReadOnly, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt}
	}
	return out, nil
}

// RevokeToken deletes the token with the given ID, a tenant or an operator
// token. Once it returns, every node refuses the token, on connections
// already open too. It needs an operator token. An unknown ID is an error
// matching ErrTokenNotFound.
func (db *DB) RevokeToken(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty token id", ErrInvalidArgument)
	}
	var resp wire.Response
	return db.do(ctx, &wire.Request{Op: wire.OpRevokeToken, Name: id}, &resp, false)
}

// TokenID returns the ID part of a token, which has the form
// "tkv_<16 hex digits: the ID>_<secret>". It does not judge the secret.
func TokenID(token string) (string, error) {
	rest, ok := strings.CutPrefix(token, "tkv_")
	if !ok || len(rest) < 17 || rest[16] != '_' {
		return "", fmt.Errorf("%w: not a tenantkv token", ErrInvalidArgument)
	}
	id := rest[:16]
	if _, err := hex.DecodeString(id); err != nil {
		return "", fmt.Errorf("%w: not a tenantkv token", ErrInvalidArgument)
	}
	return id, nil
}
