package command

import (
	"fmt"
	"time"

	"github.com/tenantkv/tenantkv/keyspace"
)

// Types of format 4: the tenant lifecycle.
const (
	TypeLifecycle         Type = 15
	TypeCreateTrialTenant Type = 16
)

// CreateTrialTenant is CreateTenant for a tenant that starts in trial: it
// is suspended at TrialEnds, unless activated before (Lifecycle). It is a
// type of its own rather than a field of CreateTenant, whose format is
// pinned (testdata/golden) and which builds of format 3 would refuse.
type CreateTrialTenant struct {
	Name      string            `msgpack:"name"`
	Limits    keyspace.Limits   `msgpack:"limits"`
	Labels    map[string]string `msgpack:"labels"`
	CreatedAt time.Time         `msgpack:"created"`
	TrialEnds time.Time         `msgpack:"trial"`
}

func (*CreateTrialTenant) Type() Type { return TypeCreateTrialTenant }

func (c *CreateTrialTenant) Validate() error {
	if err := keyspace.ValidateName(c.Name); err != nil {
		return err
	}
	if !c.TrialEnds.After(c.CreatedAt) {
		return fmt.Errorf("%w: a trial must end after the tenant is created", ErrBadCommand)
	}
	return validateLabels(c.Labels)
}

// ActorSystem is the actor of the lifecycle actions the leader proposes
// when a deadline passes.
const ActorSystem = "system"

// Lifecycle applies one lifecycle action (keyspace.Transition) to the
// tenant with ID and Name. The state machine decides it at apply time from
// its own state and At, the proposer's clock carried in the entry, never
// from a clock of its own: every replica decides alike, and an expiry or a
// purge whose deadline the tenant no longer has (it was activated,
// restored, or the entry is a stale or replayed proposal) is refused and
// changes nothing.
//
// Retention is, for ActionCancel only, how long the data is kept: PurgeAt
// becomes At + Retention, and zero purges at once. Actor is the ID of the
// operator token that asked, or ActorSystem.
type Lifecycle struct {
	ID        keyspace.TenantID `msgpack:"id"`
	Name      string            `msgpack:"name"`
	Action    keyspace.Action   `msgpack:"a"`
	At        int64             `msgpack:"at"`
	Retention int64             `msgpack:"ret,omitempty"`
	Actor     string            `msgpack:"actor,omitempty"`
}

func (*Lifecycle) Type() Type { return TypeLifecycle }

// MaxRetention bounds a cancellation's retention (about 100 years), so
// that At + Retention cannot overflow.
const MaxRetention = 100 * 366 * 24 * time.Hour

func (c *Lifecycle) Validate() error {
	if err := c.ID.Check(); err != nil {
		return err
	}
	if err := keyspace.ValidateName(c.Name); err != nil {
		return err
	}
	if !c.Action.Valid() {
		return fmt.Errorf("%w: lifecycle action %d", ErrBadCommand, uint8(c.Action))
	}
	if c.At <= 0 {
		return fmt.Errorf("%w: lifecycle action without a time", ErrBadCommand)
	}
	if c.Retention < 0 || c.Retention > int64(MaxRetention) || (c.Retention != 0 && c.Action != keyspace.ActionCancel) {
		return fmt.Errorf("%w: retention %v (0 to %v, for cancel only)", ErrBadCommand, time.Duration(c.Retention), MaxRetention)
	}
	if len(c.Actor) > maxTokenIDLen {
		return fmt.Errorf("%w: actor of %d bytes (up to %d)", ErrBadCommand, len(c.Actor), maxTokenIDLen)
	}
	return nil
}
func (*Lifecycle) command()         {}
func (*CreateTrialTenant) command() {}
