package command

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/tenantkv/tenantkv/keyspace"
)

// Every log entry this package writes is one envelope:
//
//	version:u8  type:u8  body (msgpack of the command struct)
//
// Decode answers an envelope version or type this build does not know with
// ErrUnknownCommand, and a body that does not decode, or carries a field
// this build does not know, with ErrBadCommand. The state machine refuses a
// bad body deterministically (every replica refuses identically and
// applies nothing), but stops on an unknown type or version: that entry was
// written by a newer release, which other replicas apply (format.go).
const Version = 1

// MaxSize is the largest encoded command Propose accepts, in bytes. It
// leaves room for a 10 MB transaction plus framing.
const MaxSize = 12 << 20

// Bounds on identifiers carried by commands.
const (
	maxTokenIDLen  = 128
	maxNodeIDLen   = 256
	MaxMemberAddr  = 512
	maxLabels      = 64
	maxLabelKeyLen = 63
	maxLabelValLen = 256
)

// Type is the second byte of the envelope. Numbers are never reused.
type Type uint8

const (
	TypeTenantWrite  Type = 1
	TypeCreateTenant Type = 2
	TypeUpdateTenant Type = 3
	TypeDeleteTenant Type = 4
	TypePutToken     Type = 5
	TypeDeleteToken  Type = 6
	TypeSetMember    Type = 7
	TypeRemoveMember Type = 8
	TypeNoop         Type = 9
	// Transactions (txn.go).
	TypeTxnCommit      Type = 10
	TypeCompareAndSwap Type = 11
	// TypeBatch (12) is in batch.go, TypeSetFormat (13) in format.go,
	// TypeHoldNonvoter (14) in hold.go, TypeLifecycle (15) and
	// TypeCreateTrialTenant (16) in lifecycle.go, TypeAudited (17),
	// TypeAuditNote (18), TypeAuditPrune (19) and TypeImportAudit (20) in
	// audit.go.
)

// Command is a replicated state change. The set of commands is closed: only
// the types of this package implement it. A Command value is not modified by
// Propose and may be reused by the caller afterwards.
type Command interface {
	// Type is the entry type the command is encoded under.
	Type() Type
	// Validate checks what can be checked without state. It runs before
	// proposing (to fail fast) and again at apply time (the log is not
	// trusted), so it must be deterministic.
	Validate() error
	// command seals the interface: only this package defines commands.
	command()
}

// OpKind says what an Op does.
type OpKind uint8

const (
	// OpSet writes Key=Value.
	OpSet OpKind = 1
	// OpDelete removes Key.
	OpDelete OpKind = 2
	// OpDeleteRange removes every key in [Key, End); an empty End means the
	// end of the tenant's span, an empty Key its beginning.
	OpDeleteRange OpKind = 3
)

func (k OpKind) String() string {
	switch k {
	case OpSet:
		return "set"
	case OpDelete:
		return "delete"
	case OpDeleteRange:
		return "delete-range"
	case OpAdd:
		return "add"
	case OpMin:
		return "min"
	case OpMax:
		return "max"
	case OpCompareAndClear:
		return "compare-and-clear"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// Op is one mutation inside a TenantWrite. Keys are user keys.
type Op struct {
	Kind  OpKind `msgpack:"o"`
	Key   []byte `msgpack:"k,omitempty"`
	Value []byte `msgpack:"v,omitempty"`
	End   []byte `msgpack:"e,omitempty"`
}

func (op *Op) Validate() error {
	switch op.Kind {
	case OpSet:
		if err := keyspace.CheckKey(op.Key); err != nil {
			return err
		}
		if len(op.End) != 0 {
			return fmt.Errorf("%w: set with a range end", ErrBadCommand)
		}
		return keyspace.CheckValue(op.Value)
	case OpDelete:
		if len(op.Value) != 0 || len(op.End) != 0 {
			return fmt.Errorf("%w: delete with a value or range end", ErrBadCommand)
		}
		return keyspace.CheckKey(op.Key)
	case OpDeleteRange:
		if len(op.Value) != 0 {
			return fmt.Errorf("%w: delete-range with a value", ErrBadCommand)
		}
		return keyspace.CheckRange(op.Key, op.End)
	}
	return fmt.Errorf("%w: unknown op kind %d", ErrBadCommand, uint8(op.Kind))
}

// TenantWrite applies Ops to one tenant, atomically: all of them or none. At
// apply time the tenant must exist under TenantID with the name TenantName
// (else ErrTenantNotFound) and be active (else ErrTenantReadOnly or
// ErrTenantLocked).
type TenantWrite struct {
	TenantID   keyspace.TenantID `msgpack:"id"`
	TenantName string            `msgpack:"name"`
	Ops        []Op              `msgpack:"ops"`
	// At is the proposer's clock (Unix nanoseconds), for the retention of
	// the tenant's write history (txnlog.go); zero means unknown.
	At int64 `msgpack:"at,omitempty"`
}

func (*TenantWrite) Type() Type { return TypeTenantWrite }

func (c *TenantWrite) Validate() error {
	if err := c.TenantID.Check(); err != nil {
		return err
	}
	for i := range c.Ops {
		if err := c.Ops[i].Validate(); err != nil {
			return fmt.Errorf("op %d: %w", i, err)
		}
	}
	return nil
}

// CreateTenant creates an active tenant under the next unused ID. Its result
// carries the new ID and record. A taken name yields ErrTenantExists.
type CreateTenant struct {
	Name   string            `msgpack:"name"`
	Limits keyspace.Limits   `msgpack:"limits"`
	Labels map[string]string `msgpack:"labels"`
	// CreatedAt is set by the proposer: the apply path never reads a clock.
	CreatedAt time.Time `msgpack:"created"`
}

func (*CreateTenant) Type() Type { return TypeCreateTenant }

func (c *CreateTenant) Validate() error {
	if err := keyspace.ValidateName(c.Name); err != nil {
		return err
	}
	return validateLabels(c.Labels)
}

// UpdateTenant changes a tenant's record. Nil fields are left unchanged; a
// non-nil Labels (even empty) replaces all labels. A rename moves the name
// index entry; the ID, and so the prefix, never changes.
type UpdateTenant struct {
	ID      keyspace.TenantID `msgpack:"id"`
	NewName *string           `msgpack:"name"`
	State   *keyspace.State   `msgpack:"state"`
	Limits  *keyspace.Limits  `msgpack:"limits"`
	Labels  map[string]string `msgpack:"labels"`
}

func (*UpdateTenant) Type() Type { return TypeUpdateTenant }

func (c *UpdateTenant) Validate() error {
	if err := c.ID.Check(); err != nil {
		return err
	}
	if c.NewName != nil {
		if err := keyspace.ValidateName(*c.NewName); err != nil {
			return err
		}
	}
	if c.State != nil && !c.State.Valid() {
		return fmt.Errorf("%w: %d", keyspace.ErrInvalidState, uint8(*c.State))
	}
	return validateLabels(c.Labels)
}

// DeleteTenant purges a tenant: all its data with one range deletion, its
// record, its name, its per-tenant metadata and every token bound to it. Its
// ID is never handed out again.
type DeleteTenant struct {
	ID keyspace.TenantID `msgpack:"id"`
}

func (*DeleteTenant) Type() Type { return TypeDeleteTenant }

func (c *DeleteTenant) Validate() error { return c.ID.Check() }

// TokenRecord is the replicated record of an access token. The secret never
// enters the log: only its SHA-256.
type TokenRecord struct {
	ID string `msgpack:"id"`
	// Hash is sha256(secret).
	Hash []byte `msgpack:"hash"`
	// TenantID is the tenant the token can reach; 0 makes an operator token.
	TenantID keyspace.TenantID `msgpack:"tenant"`
	ReadOnly bool              `msgpack:"ro"`
	// ExpiresAt is when the token stops working; zero means never.
	ExpiresAt time.Time `msgpack:"expires"`
	CreatedAt time.Time `msgpack:"created"`
}

func (t *TokenRecord) Validate() error {
	if t.ID == "" || len(t.ID) > maxTokenIDLen {
		return fmt.Errorf("%w: token id of %d bytes (1 to %d)", ErrBadCommand, len(t.ID), maxTokenIDLen)
	}
	if len(t.Hash) != sha256.Size {
		return fmt.Errorf("%w: token hash of %d bytes, want %d", ErrBadCommand, len(t.Hash), sha256.Size)
	}
	if t.TenantID != 0 {
		return t.TenantID.Check()
	}
	return nil
}

// PutToken creates or replaces a token. A token bound to a tenant that does
// not exist is refused with ErrTenantNotFound.
type PutToken struct {
	Token TokenRecord `msgpack:"token"`
}

func (*PutToken) Type() Type { return TypePutToken }

func (c *PutToken) Validate() error { return c.Token.Validate() }

// DeleteToken revokes a token. A missing ID yields ErrTokenNotFound.
type DeleteToken struct {
	ID string `msgpack:"id"`
}

func (*DeleteToken) Type() Type { return TypeDeleteToken }

func (c *DeleteToken) Validate() error {
	if c.ID == "" || len(c.ID) > maxTokenIDLen {
		return fmt.Errorf("%w: token id of %d bytes (1 to %d)", ErrBadCommand, len(c.ID), maxTokenIDLen)
	}
	return nil
}

// SetMember records the addresses a node serves clients on, so that any node
// can tell a client where the leader is. It is also the stored form of a
// member's metadata (see FSM.MemberInfo).
type SetMember struct {
	NodeID     string `msgpack:"id"`
	ClientAddr string `msgpack:"client"`
	HTTPAddr   string `msgpack:"http"`
}

func (*SetMember) Type() Type { return TypeSetMember }

func (c *SetMember) Validate() error {
	if err := validateNodeID(c.NodeID); err != nil {
		return err
	}
	if len(c.ClientAddr) > MaxMemberAddr || len(c.HTTPAddr) > MaxMemberAddr {
		return fmt.Errorf("%w: member address too long", ErrBadCommand)
	}
	return nil
}

// RemoveMember deletes a node's metadata. Removing a missing one is not an
// error. Node.RemoveServer proposes it after the configuration change.
type RemoveMember struct {
	NodeID string `msgpack:"id"`
}

func (*RemoveMember) Type() Type { return TypeRemoveMember }

func (c *RemoveMember) Validate() error { return validateNodeID(c.NodeID) }

// Noop changes nothing. A new leader proposes one so that an entry of its own
// term, visible to the FSM, is committed before it serves linearizable reads.
type Noop struct{}

func (*Noop) Type() Type      { return TypeNoop }
func (*Noop) Validate() error { return nil }

func validateNodeID(id string) error {
	if id == "" || len(id) > maxNodeIDLen {
		return fmt.Errorf("%w: node id of %d bytes (1 to %d)", ErrBadCommand, len(id), maxNodeIDLen)
	}
	return nil
}

func validateLabels(labels map[string]string) error {
	if len(labels) > maxLabels {
		return fmt.Errorf("%w: %d labels, limit %d", ErrBadCommand, len(labels), maxLabels)
	}
	for k, v := range labels {
		if k == "" || len(k) > maxLabelKeyLen || len(v) > maxLabelValLen {
			return fmt.Errorf("%w: label %q: key 1 to %d bytes, value up to %d", ErrBadCommand, k, maxLabelKeyLen, maxLabelValLen)
		}
	}
	return nil
}

// newCommand returns an empty command of type t, or nil for an unknown type.
func newCommand(t Type) Command {
	switch t {
	case TypeTenantWrite:
		return &TenantWrite{}
	case TypeCreateTenant:
		return &CreateTenant{}
	case TypeUpdateTenant:
		return &UpdateTenant{}
	case TypeDeleteTenant:
		return &DeleteTenant{}
	case TypePutToken:
		return &PutToken{}
	case TypeDeleteToken:
		return &DeleteToken{}
	case TypeSetMember:
		return &SetMember{}
	case TypeRemoveMember:
		return &RemoveMember{}
	case TypeNoop:
		return &Noop{}
	case TypeTxnCommit:
		return &TxnCommit{}
	case TypeCompareAndSwap:
		return &CompareAndSwap{}
	case TypeSetFormat:
		return &SetFormat{}
	case TypeHoldNonvoter:
		return &HoldNonvoter{}
	case TypeLifecycle:
		return &Lifecycle{}
	case TypeCreateTrialTenant:
		return &CreateTrialTenant{}
	case TypeAudited:
		return &Audited{}
	case TypeAuditNote:
		return &AuditNote{}
	case TypeAuditPrune:
		return &AuditPrune{}
	case TypeImportAudit:
		return &ImportAudit{}
	}
	return nil
}

// Encode returns the log entry for cmd. It does not validate cmd.
// Encoding is deterministic (map keys are sorted).
func Encode(cmd Command) ([]byte, error) {
	if cmd == nil {
		return nil, fmt.Errorf("%w: nil command", ErrBadCommand)
	}
	if w, ok := cmd.(*TenantWrite); ok && w != nil {
		size := 64 + len(w.TenantName)
		for i := range w.Ops {
			size += 16 + len(w.Ops[i].Key) + len(w.Ops[i].Value) + len(w.Ops[i].End)
		}
		return appendTenantWrite(append(make([]byte, 0, size), Version, byte(TypeTenantWrite)), w), nil
	}
	var buf bytes.Buffer
	buf.Grow(64)
	buf.WriteByte(Version)
	buf.WriteByte(byte(cmd.Type()))
	if err := marshalTo(&buf, cmd); err != nil {
		return nil, fmt.Errorf("command: encode: %w", err)
	}
	return buf.Bytes(), nil
}

// Decode parses a log entry written by Encode. It never
// panics. An unknown version or type yields ErrUnknownCommand; a malformed
// body ErrBadCommand. The returned command does not alias b.
func Decode(b []byte) (Command, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: entry of %d bytes", ErrBadCommand, len(b))
	}
	if b[0] != Version {
		return nil, fmt.Errorf("%w: envelope version %d", ErrUnknownCommand, b[0])
	}
	if Type(b[1]) == TypeTenantWrite {
		if w, ok := decodeTenantWriteFast(b[2:]); ok {
			return w, nil
		}
	}
	cmd := newCommand(Type(b[1]))
	if cmd == nil {
		return nil, fmt.Errorf("%w: type %d", ErrUnknownCommand, b[1])
	}
	if err := Unmarshal(b[2:], cmd); err != nil {
		return nil, fmt.Errorf("%w: type %d: %v", ErrBadCommand, b[1], err)
	}
	return cmd, nil
}

// marshalTo encodes v with sorted map keys.
func marshalTo(buf *bytes.Buffer, v any) error {
	enc := msgpack.NewEncoder(buf)
	enc.SetSortMapKeys(true)
	return enc.Encode(v)
}

func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := marshalTo(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Unmarshal decodes exactly one msgpack value from b into v, refusing
// unknown fields and trailing bytes. msgpack v5.4.1 can panic on hostile
// input (a nil decoded into a time.Time field), so panics become errors.
func Unmarshal(b []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("msgpack: %v", r)
		}
	}()
	if err := checkLengths(b); err != nil {
		return err
	}
	r := bytes.NewReader(b)
	dec := msgpack.NewDecoder(r)
	dec.DisallowUnknownFields(true)
	if err := dec.Decode(v); err != nil {
		return err
	}
	if r.Len() != 0 {
		return fmt.Errorf("%d trailing bytes", r.Len())
	}
	return nil
}

// maxNesting bounds the depth of msgpack containers checkLengths accepts.
const maxNesting = 32

// checkLengths walks one msgpack value without decoding it and refuses any
// array or map header that claims more elements than bytes remain. msgpack
// v5.4.1 allocates a slice of the claimed length up front (its allocation
// limit check is inverted in decodeSliceValue), so without this a 20-byte
// entry could demand gigabytes.
func checkLengths(b []byte) error {
	r := bytes.NewReader(b)
	d := msgpack.NewDecoder(r)
	return walkLengths(d, r, 0)
}

func walkLengths(d *msgpack.Decoder, r *bytes.Reader, depth int) error {
	if depth > maxNesting {
		return fmt.Errorf("nesting deeper than %d", maxNesting)
	}
	c, err := d.PeekCode()
	if err != nil {
		return err
	}
	var n int
	switch {
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		if n, err = d.DecodeArrayLen(); err != nil {
			return err
		}
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		if n, err = d.DecodeMapLen(); err != nil {
			return err
		}
		if n > r.Len()/2 {
			return fmt.Errorf("map of %d entries in %d bytes", n, r.Len())
		}
		n *= 2
	default:
		return d.Skip()
	}
	if n > r.Len() {
		return fmt.Errorf("array of %d elements in %d bytes", n, r.Len())
	}
	for range n {
		if err := walkLengths(d, r, depth+1); err != nil {
			return err
		}
	}
	return nil
}
