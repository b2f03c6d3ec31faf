package wire

import "fmt"

// Code is a stable numeric error code. Zero is success. The server maps its
// errors to codes with one table, the client maps codes back to its sentinel
// errors with one table; the numbers never change meaning.
type Code uint16

// Codes. Never renumber; add new ones at the end.
const (
	CodeOK               Code = 0
	CodeInternal         Code = 1
	CodeBadRequest       Code = 2
	CodeUnknownOp        Code = 3
	CodeUnauthenticated  Code = 4
	CodePermissionDenied Code = 5
	CodeNotFound         Code = 6
	CodeTenantNotFound   Code = 7
	CodeTenantExists     Code = 8
	CodeInvalidKey       Code = 9
	CodeKeyTooLarge      Code = 10
	CodeValueTooLarge    Code = 11
	CodeInvalidRange     Code = 12
	CodeNotLeader        Code = 13
	CodeCommitUnknown    Code = 14
	CodeUnavailable      Code = 15
	CodeFrameTooLarge    Code = 16
	CodeVersionMismatch  Code = 17
	CodeTenantReadOnly   Code = 18
	CodeTenantLocked     Code = 19
	CodeQuotaExceeded    Code = 20
	CodeRateLimited      Code = 21
	CodeInvalidName      Code = 22
	CodeTokenNotFound    Code = 23
	CodeDeadline         Code = 24
	CodeConflict         Code = 25
	CodeTxTooOld         Code = 26
	CodeTxTooLarge       Code = 27
	CodeInvalidArgument  Code = 28
	CodeWatchTooOld      Code = 29
	// CodeTooManyConnections: the node, or the tenant on this node, has
	// as many connections as it allows; the connection is closed.
	CodeTooManyConnections Code = 30
)

var codeNames = map[Code]string{
	CodeOK: "ok", CodeInternal: "internal error", CodeBadRequest: "bad request",
	CodeUnknownOp: "unknown operation", CodeUnauthenticated: "unauthenticated",
	CodePermissionDenied: "permission denied", CodeNotFound: "not found",
	CodeTenantNotFound: "tenant not found", CodeTenantExists: "tenant exists",
	CodeInvalidKey: "invalid key", CodeKeyTooLarge: "key too large",
	CodeValueTooLarge: "value too large", CodeInvalidRange: "invalid range",
	CodeNotLeader: "not leader", CodeCommitUnknown: "commit result unknown",
	CodeUnavailable: "unavailable", CodeFrameTooLarge: "frame too large",
	CodeVersionMismatch: "protocol version mismatch", CodeTenantReadOnly: "tenant is read-only",
	CodeTenantLocked: "tenant is locked", CodeQuotaExceeded: "quota exceeded",
	CodeRateLimited: "rate limited", CodeInvalidName: "invalid tenant name",
	CodeTokenNotFound: "token not found", CodeDeadline: "deadline exceeded",
	CodeConflict: "transaction conflict", CodeTxTooOld: "transaction too old",
	CodeTxTooLarge: "transaction too large", CodeInvalidArgument: "invalid argument",
	CodeWatchTooOld: "watch version too old", CodeTooManyConnections: "too many connections",
}

func (c Code) String() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("code(%d)", uint16(c))
}
