package command

import "errors"

// Errors about entries. Each is defined once here and matched with errors.Is.
var (
	// ErrUnknownCommand is Decode's error for a log entry whose envelope
	// version or command type this build does not know. The state machine
	// does not apply such an entry: it stops (raft/fsm/format.go).
	ErrUnknownCommand = errors.New("tenantkv: unknown command")
	// ErrBadCommand is the result of a log entry whose body does not decode
	// or whose fields are malformed. Nothing is applied for it.
	ErrBadCommand = errors.New("tenantkv: malformed command")
	// ErrCommandTooLarge is returned for a command whose encoding exceeds
	// MaxSize. Nothing was proposed.
	ErrCommandTooLarge = errors.New("tenantkv: command too large")
	// ErrTxTooLarge is the result of a transaction whose mutations and read
	// ranges exceed MaxTxnBytes, or that carries more than MaxMutations
	// mutations. Nothing was applied.
	ErrTxTooLarge = errors.New("tenantkv: transaction too large")
)

// The seal of the Command interface.
func (*TenantWrite) command()    {}
func (*CreateTenant) command()   {}
func (*UpdateTenant) command()   {}
func (*DeleteTenant) command()   {}
func (*PutToken) command()       {}
func (*DeleteToken) command()    {}
func (*SetMember) command()      {}
func (*RemoveMember) command()   {}
func (*Noop) command()           {}
func (*TxnCommit) command()      {}
func (*CompareAndSwap) command() {}
func (*SetFormat) command()      {}
func (*HoldNonvoter) command()   {}
