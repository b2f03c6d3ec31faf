package fsm

import (
	"errors"
	"fmt"
)

// Errors of the state machine. Each is defined once here and matched with
// errors.Is. Errors about keys, values, ranges, names and IDs come from
// package keyspace, and errors about entries from package command; neither
// is redefined.
var (
	// ErrTenantExists is returned by CreateTenant and by a rename when the
	// name is already taken.
	ErrTenantExists = errors.New("tenantkv: tenant already exists")
	// ErrTenantNotFound is returned when a command names a tenant that does
	// not exist, or whose name no longer matches (renamed or deleted and
	// re-created under another ID).
	ErrTenantNotFound = errors.New("tenantkv: tenant not found")
	// ErrTenantReadOnly is returned by a write to a read-only tenant.
	ErrTenantReadOnly = errors.New("tenantkv: tenant is read-only")
	// ErrTenantLocked is returned by a write to a locked tenant.
	ErrTenantLocked = errors.New("tenantkv: tenant is locked")
	// ErrTokenNotFound is returned by DeleteToken and Token for a missing
	// token ID.
	ErrTokenNotFound = errors.New("tenantkv: token not found")
	// ErrMemberNotFound is returned by MemberInfo for a node without
	// replicated metadata.
	ErrMemberNotFound = errors.New("tenantkv: member not found")
	// ErrQuotaExceeded is the result of a write that would take its tenant
	// past its storage quota (bytes or keys). Nothing was applied.
	ErrQuotaExceeded = errors.New("tenantkv: quota exceeded")
	// ErrConflict is the result of a transaction whose reads were changed
	// by a transaction committed after its read version. Nothing was
	// applied; retrying with a new read version may succeed.
	ErrConflict = errors.New("tenantkv: transaction conflict")
	// ErrTxTooOld is the result of a transaction whose read version is
	// older than the tenant's retained write history, so its reads can no
	// longer be checked. Nothing was applied; retrying may succeed.
	ErrTxTooOld = errors.New("tenantkv: transaction too old")
	// ErrWatchTooOld is returned when a watch asks for changes after a
	// version older than the tenant's retained write history: some changes
	// can no longer be delivered, and the watcher must read again.
	ErrWatchTooOld = errors.New("tenantkv: watch version too old")
	// ErrRestoring is returned by the read helpers while the node installs
	// a snapshot: its store is then partly restored and its tenant catalog
	// not yet reloaded, so it can answer for no tenant. Another node can.
	ErrRestoring = errors.New("tenantkv: node is restoring a snapshot")
	// ErrStopped is returned once the machine stopped, after a storage
	// failure or because its owner stopped it (Stop). A result wrapping it
	// means the entry's effect on this replica is unknown.
	ErrStopped = errors.New("tenantkv: state machine stopped")
	// ErrFormatNotEnabled is the result of a command whose entry type
	// belongs to a log format above the cluster format (format.go):
	// nothing was applied. Propose refuses it before raft too.
	ErrFormatNotEnabled = errors.New("tenantkv: entry type not enabled by the cluster format")
	// ErrNewerFormat is what the machine stopped with on an entry, or a
	// stored cluster format, of a newer release than its build: the node
	// must be upgraded (format.go).
	ErrNewerFormat = errors.New("tenantkv: log written by a newer release")
)

// fatalError marks an error of the local store (I/O, corruption) met while
// applying. It is not a property of the command, so it must never become a
// command's result: the machine stops instead.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return "fsm: fatal apply error: " + e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

func fatal(format string, args ...any) error {
	return &fatalError{err: fmt.Errorf(format, args...)}
}
