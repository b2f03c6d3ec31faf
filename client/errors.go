package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// Errors returned by the client. Each is defined once, here, and matched with
// errors.Is: a server's answer arrives as an *Error whose Is method maps its
// code to one of these, and the client's own checks wrap them with %w.
var (
	// ErrNotFound: the key does not exist. An empty value is not ErrNotFound.
	// DB.RemoveNode answers it for a node the cluster does not know.
	ErrNotFound = errors.New("tenantkv: not found")
	// ErrTenantNotFound: no tenant has that name.
	ErrTenantNotFound = errors.New("tenantkv: tenant not found")
	// ErrTenantExists: a tenant with that name already exists.
	ErrTenantExists = errors.New("tenantkv: tenant exists")
	// ErrPermissionDenied: the token is invalid, or may not do what was asked
	// (a tenant token naming another tenant, an administration operation
	// without an operator token).
	ErrPermissionDenied = errors.New("tenantkv: permission denied")
	// ErrInvalidKey: the key is empty.
	ErrInvalidKey = errors.New("tenantkv: invalid key")
	// ErrKeyTooLarge: the key is longer than MaxKeySize bytes.
	ErrKeyTooLarge = errors.New("tenantkv: key too large")
	// ErrValueTooLarge: the value is longer than MaxValueSize bytes.
	ErrValueTooLarge = errors.New("tenantkv: value too large")
	// ErrInvalidRange: a range whose Begin is not before its End.
	ErrInvalidRange = errors.New("tenantkv: invalid range")
	// ErrInvalidName: the tenant name breaks the naming rules (1–63 of
	// a-z, 0-9 and '-', not starting or ending with '-').
	ErrInvalidName = errors.New("tenantkv: invalid tenant name")
	// ErrInvalidArgument: an argument or option is out of range.
	ErrInvalidArgument = errors.New("tenantkv: invalid argument")
	// ErrCommitUnknown: a write was sent but its outcome is unknown (the
	// connection broke, the context ended, or the server could not tell).
	// The write may or may not have been applied; read to find out.
	ErrCommitUnknown = errors.New("tenantkv: commit result unknown")
	// ErrNotLeader: the node is not the leader. The client follows leaders
	// on its own; callers see this only inside a "last error" of a timeout.
	ErrNotLeader = errors.New("tenantkv: not leader")
	// ErrUnavailable: no node could serve the request (no leader known, no
	// endpoint reachable, the node shutting down).
	ErrUnavailable = errors.New("tenantkv: unavailable")
	// ErrTenantReadOnly: the tenant is read-only; writes are refused.
	ErrTenantReadOnly = errors.New("tenantkv: tenant is read-only")
	// ErrTenantLocked: the tenant is locked; reads and writes are refused.
	ErrTenantLocked = errors.New("tenantkv: tenant is locked")
	// ErrQuotaExceeded: the write would take the tenant over a storage limit.
	ErrQuotaExceeded = errors.New("tenantkv: quota exceeded")
	// ErrRateLimited: the tenant is over its request rate or concurrency
	// limit. Error.RetryAfter carries the server's hint.
	ErrRateLimited = errors.New("tenantkv: rate limited")
	// ErrTokenNotFound: no token has that ID.
	ErrTokenNotFound = errors.New("tenantkv: token not found")
	// ErrConflict: a transaction conflicted with another one.
	ErrConflict = errors.New("tenantkv: transaction conflict")
	// ErrTxTooOld: a transaction's read version is too old.
	ErrTxTooOld = errors.New("tenantkv: transaction too old")
	// ErrTxTooLarge: a transaction is larger than the server accepts.
	ErrTxTooLarge = errors.New("tenantkv: transaction too large")
	// ErrTxDone: a transaction was used after its function returned.
	// (Raised by the client, never by a server.)
	ErrTxDone = errors.New("tenantkv: transaction already finished")
	// ErrWatchTooOld: a watch asked for changes after a version older than
	// the tenant's retained write history; read again, then watch from the
	// version read.
	ErrWatchTooOld = errors.New("tenantkv: watch version too old")
	// ErrTooManyConnections: the node, or the tenant on that node, has as
	// many connections as it allows (serve --max-connections,
	// --max-connections-per-tenant, the tenant's MaxConnections).
	ErrTooManyConnections = errors.New("tenantkv: too many connections")
	// ErrInternal: the server failed; the message says no more.
	ErrInternal = errors.New("tenantkv: internal error")
	// ErrBadRequest: the server could not make sense of a request (a
	// malformed or oversized frame, an unknown operation, a protocol version
	// it does not speak). It points at a client or server bug.
	ErrBadRequest = errors.New("tenantkv: bad request")
	// ErrClosed: the DB was closed.
	ErrClosed = errors.New("tenantkv: client closed")
	// ErrTenantNotEmpty: an import was asked to load into a tenant that
	// already holds keys. (Raised by the client, never by a server.)
	ErrTenantNotEmpty = errors.New("tenantkv: tenant not empty")
	// ErrCorruptExport: an export file is not sound (truncated, a wrong
	// checksum, a bad length, keys out of order, an unknown version).
	// (Raised by the client, never by a server.)
	ErrCorruptExport = errors.New("tenantkv: corrupt export file")
)

// Code is the stable numeric code of a server error, as sent on the wire.
// Callers match errors with errors.Is against the sentinels rather than
// comparing codes.
type Code uint16

// String returns the code's short name, such as "not found".
func (c Code) String() string { return wire.Code(c).String() }

// codeErrors is the one table that maps wire codes to sentinels. Every code
// of the protocol has an entry; a code from a newer server that is missing
// here matches no sentinel.
var codeErrors = map[wire.Code]error{
	wire.CodeInternal:         ErrInternal,
	wire.CodeBadRequest:       ErrBadRequest,
	wire.CodeUnknownOp:        ErrBadRequest,
	wire.CodeUnauthenticated:  ErrPermissionDenied,
	wire.CodePermissionDenied: ErrPermissionDenied,
	wire.CodeNotFound:         ErrNotFound,
	wire.CodeTenantNotFound:   ErrTenantNotFound,
	wire.CodeTenantExists:     ErrTenantExists,
	wire.CodeInvalidKey:       ErrInvalidKey,
	wire.CodeKeyTooLarge:      ErrKeyTooLarge,
	wire.CodeValueTooLarge:    ErrValueTooLarge,
	wire.CodeInvalidRange:     ErrInvalidRange,
	wire.CodeNotLeader:        ErrNotLeader,
	wire.CodeCommitUnknown:    ErrCommitUnknown,
	wire.CodeUnavailable:      ErrUnavailable,
	wire.CodeFrameTooLarge:    ErrBadRequest,
	wire.CodeVersionMismatch:  ErrBadRequest,
	wire.CodeTenantReadOnly:   ErrTenantReadOnly,
	wire.CodeTenantLocked:     ErrTenantLocked,
	wire.CodeQuotaExceeded:    ErrQuotaExceeded,
	wire.CodeRateLimited:      ErrRateLimited,
	wire.CodeInvalidName:      ErrInvalidName,
	wire.CodeTokenNotFound:    ErrTokenNotFound,
	wire.CodeDeadline:         context.DeadlineExceeded,
	wire.CodeConflict:         ErrConflict,
	wire.CodeTxTooOld:         ErrTxTooOld,
	wire.CodeTxTooLarge:       ErrTxTooLarge,
	wire.CodeInvalidArgument:  ErrInvalidArgument,
	wire.CodeWatchTooOld:      ErrWatchTooOld,

	wire.CodeTooManyConnections: ErrTooManyConnections,
}

// Error is an error answered by a server. errors.Is(err, ErrNotFound) and
// the like match it through its code; errors.As gives access to the code,
// the server's message and its retry hint.
type Error struct {
	// Code is the wire code of the error.
	Code Code
	// Message is the server's explanation; it may be empty.
	Message string
	// RetryAfter is the server's hint for when to try again (rate limits).
	RetryAfter time.Duration
	// leader is the leader's client address a not-leader answer names.
	leader string
}

var _ error = (*Error)(nil)

// Error returns one short line, such as "tenantkv: not found" or
// "tenantkv: tenant not found: acme".
func (e *Error) Error() string {
	head := "tenantkv: " + e.Code.String()
	if s, ok := codeErrors[wire.Code(e.Code)]; ok && s != context.DeadlineExceeded {
		head = s.Error()
	}
	msg := strings.Join(strings.Fields(e.Message), " ")
	switch {
	case msg == "" || msg == e.Code.String() || "tenantkv: "+msg == head:
		return head
	case strings.HasPrefix(msg, "tenantkv:"):
		return msg
	default:
		return head + ": " + msg
	}
}

// Is reports whether target is the sentinel of e's code.
func (e *Error) Is(target error) bool {
	s, ok := codeErrors[wire.Code(e.Code)]
	return ok && s == target
}

// errorOf turns a failed response into an *Error.
func errorOf(resp *wire.Response) *Error {
	return &Error{Code: Code(resp.Code), Message: resp.Msg, RetryAfter: resp.RetryAfter, leader: resp.Leader}
}

// connError reports that a connection failed while a request was on it.
// sent says whether the request's frame may have reached the server; only a
// request that certainly did not may be retried unless it is idempotent.
type connError struct {
	addr string
	err  error
	sent bool
}

func (e *connError) Error() string {
	return fmt.Sprintf("tenantkv: connection to %s: %v", e.addr, e.err)
}

func (e *connError) Unwrap() error { return e.err }

// protocolError is a connection failure caused by what the server sent, not
// by the network: retrying would meet it again.
type protocolError struct{ err error }

func (e *protocolError) Error() string { return "tenantkv: protocol error: " + e.err.Error() }
func (e *protocolError) Unwrap() error { return e.err }
