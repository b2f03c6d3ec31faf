package server

import (
	"context"
	"errors"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/raft/fsm"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft"
	"github.com/tenantkv/tenantkv/store"
)

// Errors of the server layer.
var (
	// ErrPermissionDenied is returned when a principal may not do what it
	// asks, including naming a tenant other than its own.
	ErrPermissionDenied = errors.New("tenantkv: permission denied")
	// ErrRateLimited is returned when a tenant is over its rate or
	// concurrency limit.
	ErrRateLimited = errors.New("tenantkv: rate limited")
	// ErrBadRequest is returned for a request whose fields do not fit its
	// operation.
	ErrBadRequest = errors.New("tenantkv: bad request")
	// ErrBatchTooLarge is returned for a batch over 10 MB of keys and values.
	ErrBatchTooLarge = errors.New("tenantkv: batch too large")
	// ErrCursorNotFound is returned for an export cursor that expired or
	// never existed.
	ErrCursorNotFound = errors.New("tenantkv: export cursor not found")
	// ErrInsecurePeers is returned by Start for a raft address that other
	// hosts could reach when peer TLS is off and InsecurePeers is not set.
	ErrInsecurePeers = errors.New("tenantkv: unauthenticated raft on an address other hosts can reach")
)

// errorCodes is the one table that maps server-side errors to wire codes.
// Order matters only where one error wraps another: the first match wins.
var errorCodes = []struct {
	err  error
	code wire.Code
}{
	{store.ErrNotFound, wire.CodeNotFound},
	{ErrPermissionDenied, wire.CodePermissionDenied},
	{ErrRateLimited, wire.CodeRateLimited},
	{ErrBadRequest, wire.CodeBadRequest},
	{ErrBatchTooLarge, wire.CodeTxTooLarge},
	{ErrCursorNotFound, wire.CodeInvalidArgument},
	{keyspace.ErrInvalidName, wire.CodeInvalidName},
	{keyspace.ErrInvalidKey, wire.CodeInvalidKey},
	{keyspace.ErrKeyTooLarge, wire.CodeKeyTooLarge},
	{keyspace.ErrValueTooLarge, wire.CodeValueTooLarge},
	{keyspace.ErrInvalidRange, wire.CodeInvalidRange},
	{keyspace.ErrInvalidState, wire.CodeInvalidArgument},
	{keyspace.ErrTransition, wire.CodeInvalidArgument},
	{fsm.ErrFormatNotEnabled, wire.CodeInvalidArgument},
	{fsm.ErrTenantNotFound, wire.CodeTenantNotFound},
	{fsm.ErrTenantExists, wire.CodeTenantExists},
	{fsm.ErrTenantReadOnly, wire.CodeTenantReadOnly},
	{fsm.ErrTenantLocked, wire.CodeTenantLocked},
	{fsm.ErrTokenNotFound, wire.CodeTokenNotFound},
	{fsm.ErrMemberNotFound, wire.CodeNotFound},
	{fsm.ErrQuotaExceeded, wire.CodeQuotaExceeded},
	{fsm.ErrConflict, wire.CodeConflict},
	{fsm.ErrTxTooOld, wire.CodeTxTooOld},
	{command.ErrTxTooLarge, wire.CodeTxTooLarge},
	{fsm.ErrWatchTooOld, wire.CodeWatchTooOld},
	{command.ErrBadCommand, wire.CodeInvalidArgument}, // a command's own checks: labels, token IDs, ...
	{command.ErrCommandTooLarge, wire.CodeTxTooLarge},
	{raft.ErrMemberRefused, wire.CodeInvalidArgument},
	{raft.ErrNotLeader, wire.CodeNotLeader},
	{raft.ErrCommitUnknown, wire.CodeCommitUnknown},
	{raft.ErrShutdown, wire.CodeUnavailable},
	{fsm.ErrRestoring, wire.CodeUnavailable},
	{context.DeadlineExceeded, wire.CodeDeadline},
	{context.Canceled, wire.CodeDeadline},
}

// codeOf maps err to its wire code; unknown errors are internal.
func codeOf(err error) wire.Code {
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			return e.code
		}
	}
	return wire.CodeInternal
}
