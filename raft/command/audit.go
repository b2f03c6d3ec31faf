package command

import (
	"fmt"
	"time"

	"github.com/tenantkv/tenantkv/keyspace"
)

// Types of format 4: the audit trail (raft/fsm/audit.go).
const (
	TypeAudited    Type = 17
	TypeAuditNote  Type = 18
	TypeAuditPrune Type = 19
)

// Bounds of audit entries.
const (
	maxAuditKind = 32
	// MaxAuditText bounds an event's before and after descriptions.
	MaxAuditText = 1024
	// MaxAuditPrune bounds the events one AuditPrune drops.
	MaxAuditPrune = 256
)

// Audited carries an operator's command (CreateTenant, CreateTrialTenant,
// UpdateTenant, PutToken, DeleteToken) with who asked and when, so that
// the state machine records an event in the affected tenant's audit trail
// when it applies the command. The inner command is applied exactly as it
// would be alone; the event records the change it made.
type Audited struct {
	Actor string `msgpack:"actor"`
	At    int64  `msgpack:"at"`
	// Cmd is the inner command's entry (Encode), one of the types above.
	Cmd []byte `msgpack:"cmd"`
}

func (*Audited) Type() Type { return TypeAudited }

func (c *Audited) Validate() error {
	if len(c.Actor) > maxTokenIDLen || c.At <= 0 {
		return fmt.Errorf("%w: audited command without a time or with an actor over %d bytes", ErrBadCommand, maxTokenIDLen)
	}
	inner, err := c.Inner()
	if err != nil {
		return err
	}
	return inner.Validate()
}

// Inner decodes the carried command, refusing any type but those above.
func (c *Audited) Inner() (Command, error) {
	inner, err := Decode(c.Cmd)
	if err != nil {
		return nil, fmt.Errorf("%w: audited command: %v", ErrBadCommand, err)
	}
	switch inner.(type) {
	case *CreateTenant, *CreateTrialTenant, *UpdateTenant, *PutToken, *DeleteToken:
		return inner, nil
	}
	return nil, fmt.Errorf("%w: type %d cannot be audited", ErrBadCommand, inner.Type())
}

// NewAudited wraps cmd.
func NewAudited(actor string, at time.Time, cmd Command) (*Audited, error) {
	b, err := Encode(cmd)
	if err != nil {
		return nil, err
	}
	return &Audited{Actor: actor, At: at.UnixNano(), Cmd: b}, nil
}

// AuditNote records an event that changed no replicated state (an export,
// an import, refused attempts of a tenant's token to reach other tenants)
// in the trail of the tenant with ID and Name.
type AuditNote struct {
	ID    keyspace.TenantID `msgpack:"id"`
	Name  string            `msgpack:"name"`
	At    int64             `msgpack:"at"`
	Actor string            `msgpack:"actor"`
	Kind  string            `msgpack:"kind"`
	After string            `msgpack:"after,omitempty"`
}

func (*AuditNote) Type() Type { return TypeAuditNote }

func (c *AuditNote) Validate() error {
	if err := c.ID.Check(); err != nil {
		return err
	}
	if err := keyspace.ValidateName(c.Name); err != nil {
		return err
	}
	if c.At <= 0 || len(c.Actor) > maxTokenIDLen || c.Kind == "" || len(c.Kind) > maxAuditKind || len(c.After) > MaxAuditText {
		return fmt.Errorf("%w: audit note: time, actor, kind or text out of bounds", ErrBadCommand)
	}
	return nil
}

// AuditPrune drops up to Max of the oldest events of tenant ID's trail
// that are older than Before (Unix nanoseconds). The leader proposes it
// with its --audit-retention; the chain then starts at the first kept
// event, whose predecessor's hash the trail's state keeps.
type AuditPrune struct {
	ID     keyspace.TenantID `msgpack:"id"`
	Before int64             `msgpack:"before"`
	Max    uint32            `msgpack:"max"`
}

func (*AuditPrune) Type() Type { return TypeAuditPrune }

func (c *AuditPrune) Validate() error {
	if err := c.ID.Check(); err != nil {
		return err
	}
	if c.Max == 0 || c.Max > MaxAuditPrune {
		return fmt.Errorf("%w: audit prune of %d events (1 to %d)", ErrBadCommand, c.Max, MaxAuditPrune)
	}
	return nil
}

func (*Audited) command()    {}
func (*AuditNote) command()  {}
func (*AuditPrune) command() {}

// TypeImportAudit is the type of ImportAudit entries (format 4).
const TypeImportAudit Type = 20

// MaxImportedEvents bounds the events of one ImportAudit.
const MaxImportedEvents = 1000

// ImportedEvent is an event of another trail, from an export file.
type ImportedEvent struct {
	At     int64  `msgpack:"at"`
	Actor  string `msgpack:"actor"`
	Kind   string `msgpack:"kind"`
	Before string `msgpack:"before,omitempty"`
	After  string `msgpack:"after,omitempty"`
}

// ImportAudit records, in the trail of the tenant with ID and Name, the
// events of the trail an export file carried (tenant import), each as an
// event of kind "imported:" + its kind with its own time and actor, and,
// when Source is set, an "import" event by Actor at At that describes the
// source. The imported events start a new chain in this trail: the file's
// hashes are those of another cluster's store.
type ImportAudit struct {
	ID     keyspace.TenantID `msgpack:"id"`
	Name   string            `msgpack:"name"`
	At     int64             `msgpack:"at"`
	Actor  string            `msgpack:"actor"`
	Source string            `msgpack:"source,omitempty"`
	Events []ImportedEvent   `msgpack:"events"`
}

func (*ImportAudit) Type() Type { return TypeImportAudit }

// maxImportedKind leaves room for the "imported:" prefix.
const maxImportedKind = maxAuditKind - len("imported:")

func (c *ImportAudit) Validate() error {
	if err := c.ID.Check(); err != nil {
		return err
	}
	if err := keyspace.ValidateName(c.Name); err != nil {
		return err
	}
	if c.At <= 0 || len(c.Actor) > maxTokenIDLen || len(c.Source) > MaxAuditText || len(c.Events) > MaxImportedEvents {
		return fmt.Errorf("%w: audit import: time, actor, source or event count out of bounds", ErrBadCommand)
	}
	for i, e := range c.Events {
		if e.Kind == "" || len(e.Kind) > maxImportedKind || len(e.Actor) > maxTokenIDLen || len(e.Before) > MaxAuditText || len(e.After) > MaxAuditText {
			return fmt.Errorf("%w: audit import: event %d out of bounds", ErrBadCommand, i)
		}
	}
	return nil
}

func (*ImportAudit) command() {}
