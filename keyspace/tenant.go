package keyspace

import (
	"bytes"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// State is the lifecycle state of a tenant (lifecycle.go has the
// transitions between them).
type State uint8

const (
	// StateActive allows reads and writes.
	StateActive State = 1
	// StateSuspended allows reads and refuses writes. Releases before the
	// lifecycle called it "read-only", which ParseState still accepts.
	StateSuspended State = 2
	// StateLocked refuses everything: the operator's emergency stop,
	// outside the lifecycle.
	StateLocked State = 3
	// StateTrial allows reads and writes until the tenant's trial ends
	// (Tenant.TrialEnds), when the leader suspends it.
	StateTrial State = 4
	// StateCancelled refuses every data operation and every token of the
	// tenant, but keeps its data, tokens and record until the retention
	// ends (Tenant.PurgeAt), when the leader purges it.
	StateCancelled State = 5

	// StateReadOnly is the name of StateSuspended before the lifecycle.
	StateReadOnly = StateSuspended
)

var stateNames = map[State]string{
	StateActive:    "active",
	StateSuspended: "suspended",
	StateLocked:    "locked",
	StateTrial:     "trial",
	StateCancelled: "cancelled",
}

// stateOrder lists the states in the order messages name them.
var stateOrder = []State{StateTrial, StateActive, StateSuspended, StateCancelled, StateLocked}

func (s State) String() string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ParseState parses a state name: "trial", "active", "suspended",
// "cancelled" or "locked", and "read-only", the old name of "suspended".
func ParseState(s string) (State, error) {
	if s == "read-only" {
		return StateSuspended, nil
	}
	for st, n := range stateNames {
		if n == s {
			return st, nil
		}
	}
	return 0, fmt.Errorf("%w: %q (want trial, active, suspended, cancelled or locked)", ErrInvalidState, s)
}

// Valid reports whether s is a known state.
func (s State) Valid() bool { _, ok := stateNames[s]; return ok }

// AllowsReads reports whether a tenant in state s may be read.
func (s State) AllowsReads() bool {
	return s == StateActive || s == StateSuspended || s == StateTrial
}

// AllowsWrites reports whether a tenant in state s may be written.
func (s State) AllowsWrites() bool { return s == StateActive || s == StateTrial }

// Limits are the per-tenant limits. A zero field means unlimited.
type Limits struct {
	MaxBytes      uint64 `msgpack:"mb,omitempty"`
	MaxKeys       uint64 `msgpack:"mk,omitempty"`
	OpsPerSec     uint64 `msgpack:"ops,omitempty"`
	Burst         uint64 `msgpack:"burst,omitempty"`
	MaxConcurrent uint64 `msgpack:"mc,omitempty"`
	MaxWatches    uint64 `msgpack:"mw,omitempty"`
	// MaxConnections caps the tenant's authenticated client connections on each
	// node; zero means the node's default (--max-connections-per-tenant).
	MaxConnections uint64 `msgpack:"mcn,omitempty"`
}

// Tenant is the replicated record of one tenant, stored in the system keyspace
// under TenantRecordKey(ID).
type Tenant struct {
	ID        TenantID          `msgpack:"id"`
	Name      string            `msgpack:"name"`
	State     State             `msgpack:"state"`
	Limits    Limits            `msgpack:"limits"`
	Labels    map[string]string `msgpack:"labels,omitempty"`
	CreatedAt time.Time         `msgpack:"created"`
	// TrialEnds is when a tenant in StateTrial is suspended; zero in any
	// other state. PurgeAt is when a tenant in StateCancelled is purged;
	// zero in any other state. Records of releases before the lifecycle
	// have neither, which is what those states mean.
	TrialEnds time.Time `msgpack:"trial_ends,omitempty"`
	PurgeAt   time.Time `msgpack:"purge_at,omitempty"`
}

// Validate checks the record's invariants.
func (t *Tenant) Validate() error {
	if err := t.ID.Check(); err != nil {
		return err
	}
	if err := ValidateName(t.Name); err != nil {
		return err
	}
	if !t.State.Valid() {
		return fmt.Errorf("%w: %d", ErrInvalidState, uint8(t.State))
	}
	return nil
}

// EncodeTenant encodes a tenant record for the system keyspace.
func EncodeTenant(t *Tenant) ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	// Sorted map keys make the encoding deterministic, so replicas that
	// apply the same command store byte-identical records.
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(t); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DecodeTenant decodes and validates a tenant record. It never panics: a
// record that does not decode is refused with ErrInvalidRecord.
func DecodeTenant(b []byte) (*Tenant, error) {
	var t Tenant
	if err := unmarshalTenant(b, &t); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRecord, err)
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRecord, err)
	}
	return &t, nil
}

// unmarshalTenant decodes b into t with a fresh msgpack decoder, turning the
// decoder's panics into errors. It works around two bugs of msgpack v5.4.1:
//
//   - msgpack.Unmarshal takes its decoder from a sync.Pool, and a string,
//     binary or extension whose length header exceeds the remaining input
//     grows the pooled decoder's buffer by up to 1 MiB before failing, for
//     good: fed such records over and over, the process grows without bound.
//     A decoder of our own is garbage after the call.
//   - decoding a nil into a struct field whose pointer implements an
//     unmarshaler, such as Tenant.CreatedAt (time.Time), panics with
//     "reflect: call of reflect.Value.IsNil on struct Value".
func unmarshalTenant(b []byte, t *Tenant) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("msgpack: %v", r)
		}
	}()
	return msgpack.NewDecoder(bytes.NewReader(b)).Decode(t)
}
