package command

import "fmt"

// # Formats
//
// A format is a set of entry types. Format 1 is every type up to and
// including the batch entry (types 1 to 12), what releases before the
// format gate wrote; each later format adds types. A replica applies only
// the types of the formats its build knows, and a cluster writes only the
// types of its cluster format, which the state machine keeps as replicated
// state and which SetFormat raises once every member runs a build that
// knows the new format (raft/fsm/format.go, docs/OPERATIONS.md, Upgrades).
// A type's format never changes, and a format, once released, never gains
// types.

// Format numbers a log format.
type Format uint32

const (
	// Format1 is the format of every release before the format gate, and
	// the format of a cluster that never raised it.
	Format1 Format = 1
	// Format2 adds SetFormat.
	Format2 Format = 2
	// Format3 adds HoldNonvoter.
	Format3 Format = 3
	// Format4 adds Lifecycle and CreateTrialTenant (the tenant
	// lifecycle), and Audited, AuditNote and AuditPrune (the audit trail).
	Format4 Format = 4
	// MaxFormat is the highest format this build knows.
	MaxFormat = Format4
)

// TypeSetFormat is the type of SetFormat entries (format 2).
const TypeSetFormat Type = 13

// typeFormats maps every type this build knows to the format that
// introduced it; a type outside it is unknown.
var typeFormats = map[Type]Format{
	TypeTenantWrite:       Format1,
	TypeCreateTenant:      Format1,
	TypeUpdateTenant:      Format1,
	TypeDeleteTenant:      Format1,
	TypePutToken:          Format1,
	TypeDeleteToken:       Format1,
	TypeSetMember:         Format1,
	TypeRemoveMember:      Format1,
	TypeNoop:              Format1,
	TypeTxnCommit:         Format1,
	TypeCompareAndSwap:    Format1,
	TypeBatch:             Format1,
	TypeSetFormat:         Format2,
	TypeHoldNonvoter:      Format3,
	TypeLifecycle:         Format4,
	TypeCreateTrialTenant: Format4,
	TypeAudited:           Format4,
	TypeAuditNote:         Format4,
	TypeAuditPrune:        Format4,
	TypeImportAudit:       Format4,
}

// FormatOf returns the format that introduced entry type t, or 0 for a
// type this build does not know.
func FormatOf(t Type) Format { return typeFormats[t] }

// Gated reports whether a command of type t may be written only once the
// cluster format reached FormatOf(t). Every type of a later format is,
// except SetFormat itself: it is what raises the cluster format, and it is
// written only once every member knows it.
func Gated(t Type) bool { return FormatOf(t) > Format1 && t != TypeSetFormat }

// SetFormat raises the cluster format to Version. The leader proposes it
// once every member of the configuration says its build knows Version. A
// Version at or below the cluster format changes nothing; one above the
// applying build's MaxFormat stops that replica (its build is too old to
// apply what follows), which is why Validate does not refuse it: a refusal
// would let that replica go on and diverge.
type SetFormat struct {
	Version uint32 `msgpack:"v"`
}

func (*SetFormat) Type() Type { return TypeSetFormat }

func (c *SetFormat) Validate() error {
	if c.Version == 0 {
		return fmt.Errorf("%w: cluster format 0", ErrBadCommand)
	}
	return nil
}
