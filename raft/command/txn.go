package command

import (
	"bytes"
	"fmt"

	"github.com/tenantkv/tenantkv/keyspace"
)

// Atomic operations, valid only inside a TxnCommit. They are evaluated at
// apply time against the key's value at that point (the stored value, as
// changed by the transaction's own earlier mutations), add no read conflict,
// and are recorded in the write history as the set or delete they became.
const (
	// OpAdd adds Value, a little-endian int64 (8 bytes), to the key's value
	// read as a little-endian int64: a missing key counts as 0, a shorter
	// value is zero-extended, a longer one truncated to 8 bytes. The result
	// is stored as 8 bytes; overflow wraps.
	OpAdd OpKind = 4
	// OpMin stores the smaller of the key's value and Value, both read as
	// little-endian int64 (as for OpAdd) and compared as signed integers.
	// A missing key takes Value.
	OpMin OpKind = 5
	// OpMax is OpMin with the larger of the two.
	OpMax OpKind = 6
	// OpCompareAndClear deletes the key if its value equals Value exactly;
	// otherwise, and for a missing key, it does nothing.
	OpCompareAndClear OpKind = 7
)

// MaxTxnBytes bounds a transaction: the sum over its mutations of key,
// value and range-end lengths plus TxnOverhead each, and over its read
// ranges of both bounds plus TxnOverhead each. With the overhead counted,
// every transaction within the bound encodes below MaxSize.
const MaxTxnBytes = 10 << 20

// TxnOverhead is the fixed cost charged per mutation and per read range
// towards MaxTxnBytes, in TenantWrite and TxnCommit alike: about what one
// mutation costs the apply path beyond its bytes (its Op, its entries in
// the apply's ordered sets, its history record header), so that a write of
// empty mutations is not free. With it, 10 MB holds at most 163,840
// mutations; MaxMutations bounds them further.
const TxnOverhead = 64

// MaxMutations is the most mutations one TenantWrite or TxnCommit may
// carry, like etcd's --max-txn-ops (whose default is 128) and unlike
// FoundationDB, which bounds a transaction by its 10 MB only. Apply time is
// linear in the mutations (applyset.go), but one command holds the apply
// loop of every tenant while it applies, and cannot be interrupted: at
// 5,000 the most expensive write (distinct sets and delete-ranges) applies
// in about 10 ms of CPU on the 2-core reference machine, so another
// tenant's p99 stays under 100 ms while it is sent back to back (at 10,000
// it measured 150 to 300 ms; docs/RELIABILITY.md). Imports write 1,000
// keys per batch.
const MaxMutations = 5_000

// appliedTxnOverhead is the per-mutation and per-read-range cost the state
// machine itself charges a TxnCommit against MaxTxnBytes when it applies
// one: the 16 bytes of the releases before TxnOverhead was raised to 64.
//
// The state machine must not refuse an entry that an earlier release
// accepted and acknowledged: the log still holds such entries after an
// upgrade, and a replica replaying them (after a restart, or catching up
// from the log) would drop an acknowledged write, or diverge from one that
// applied it before the upgrade. So the limits of this release, TxnOverhead
// and MaxMutations, are enforced before raft (by the server, and by the
// client library), and apply keeps the rule of the earlier releases: a
// TxnCommit within MaxTxnBytes at 16 bytes a mutation, a TenantWrite
// unchecked (its size is bounded by the frame that carried it). Tightening
// it needs the log format version of the state machine issue. A forged
// entry needs a cluster certificate (peer TLS), and apply is linear in its
// mutations.
const appliedTxnOverhead = 16

// CheckProposedSize applies CheckWriteSize to the commands that write
// tenant data, when they are proposed.
func CheckProposedSize(cmd Command) error {
	switch c := cmd.(type) {
	case *TenantWrite:
		return CheckWriteSize(c.Ops, 0)
	case *TxnCommit:
		size := 0
		for i := range c.Reads {
			size += len(c.Reads[i].Start) + len(c.Reads[i].End) + TxnOverhead
		}
		return CheckWriteSize(c.Ops, size)
	}
	return nil
}

// CheckWriteSize refuses ops that exceed MaxMutations, or MaxTxnBytes
// together with size, the bytes already counted (a commit's read ranges):
// the limits of a write before it is proposed.
func CheckWriteSize(ops []Op, size int) error {
	if len(ops) > MaxMutations {
		return fmt.Errorf("%w: %d mutations, limit %d", ErrTxTooLarge, len(ops), MaxMutations)
	}
	for i := range ops {
		size += len(ops[i].Key) + len(ops[i].Value) + len(ops[i].End) + TxnOverhead
	}
	if size > MaxTxnBytes {
		return fmt.Errorf("%w: %d bytes with %d per mutation, limit %d", ErrTxTooLarge, size, TxnOverhead, MaxTxnBytes)
	}
	return nil
}

// maxTxnIDLen bounds a transaction ID.
const maxTxnIDLen = 32

// KeyRange is a half-open range of user keys [Start, End). An empty Start
// is the first key of the tenant, an empty End the end of its keys.
type KeyRange struct {
	Start []byte `msgpack:"s,omitempty"`
	End   []byte `msgpack:"e,omitempty"`
}

// contains reports whether k lies in r.
func (r *KeyRange) Contains(k []byte) bool {
	return bytes.Compare(k, r.Start) >= 0 && (len(r.End) == 0 || bytes.Compare(k, r.End) < 0)
}

// TxnCommit commits an optimistic transaction on one tenant. At apply time:
// the tenant must exist under TenantID with the name TenantName
// (ErrTenantNotFound); ReadVersion must not be older than the tenant's
// retained history (ErrTxTooOld); no write committed after ReadVersion may
// intersect Reads (ErrConflict); and, if there are Ops, the tenant must be
// writable and stay within its quotas. Then Ops are applied, all of them or
// none, at the tenant's next version, and recorded in its write history.
//
// TxnID, when set, makes the commit idempotent: if the history after
// ReadVersion already holds a commit with the same ID (an earlier attempt
// whose answer was lost), the command succeeds with that commit's version
// and applies nothing again.
type TxnCommit struct {
	TenantID    keyspace.TenantID `msgpack:"id"`
	TenantName  string            `msgpack:"name"`
	ReadVersion uint64            `msgpack:"rv"`
	TxnID       []byte            `msgpack:"tx,omitempty"`
	Reads       []KeyRange        `msgpack:"reads,omitempty"`
	Ops         []Op              `msgpack:"ops,omitempty"`
	// At is the proposer's clock (Unix nanoseconds); the write history's
	// retention window is measured in it, never in an apply-time clock.
	At int64 `msgpack:"at,omitempty"`
}

func (*TxnCommit) Type() Type { return TypeTxnCommit }

func (c *TxnCommit) Validate() error {
	if err := c.TenantID.Check(); err != nil {
		return err
	}
	if len(c.TxnID) > maxTxnIDLen {
		return fmt.Errorf("%w: transaction id of %d bytes, limit %d", ErrBadCommand, len(c.TxnID), maxTxnIDLen)
	}
	size := 0
	for i := range c.Reads {
		r := &c.Reads[i]
		if err := keyspace.CheckRange(r.Start, r.End); err != nil {
			return fmt.Errorf("read range %d: %w", i, err)
		}
		size += len(r.Start) + len(r.End) + appliedTxnOverhead
	}
	for i := range c.Ops {
		if err := validateTxnOp(&c.Ops[i]); err != nil {
			return fmt.Errorf("op %d: %w", i, err)
		}
		size += len(c.Ops[i].Key) + len(c.Ops[i].Value) + len(c.Ops[i].End) + appliedTxnOverhead
	}
	if size > MaxTxnBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTxTooLarge, size, MaxTxnBytes)
	}
	return nil
}

// TxnSize is the size of a transaction as counted against MaxTxnBytes.
func TxnSize(reads []KeyRange, ops []Op) int {
	n := 0
	for i := range reads {
		n += len(reads[i].Start) + len(reads[i].End) + TxnOverhead
	}
	for i := range ops {
		n += len(ops[i].Key) + len(ops[i].Value) + len(ops[i].End) + TxnOverhead
	}
	return n
}

// validateTxnOp accepts the plain ops of a TenantWrite and the atomic ones.
func validateTxnOp(op *Op) error {
	switch op.Kind {
	case OpSet, OpDelete, OpDeleteRange:
		return op.Validate()
	case OpAdd, OpMin, OpMax:
		if err := keyspace.CheckKey(op.Key); err != nil {
			return err
		}
		if len(op.End) != 0 || len(op.Value) != 8 {
			return fmt.Errorf("%w: %s needs an 8-byte operand and no range end", ErrBadCommand, op.Kind)
		}
		return nil
	case OpCompareAndClear:
		if err := keyspace.CheckKey(op.Key); err != nil {
			return err
		}
		if len(op.End) != 0 {
			return fmt.Errorf("%w: compare-and-clear with a range end", ErrBadCommand)
		}
		return keyspace.CheckValue(op.Value)
	}
	return fmt.Errorf("%w: unknown op kind %d", ErrBadCommand, uint8(op.Kind))
}

// CompareAndSwap sets Key to New (or deletes it, with NewAbsent) if its
// current value equals Old (or, with OldAbsent, if it is missing), as one
// linearizable step evaluated at apply time. Result.Swapped tells whether it
// did; a swap is a write at the tenant's next version. The tenant checks are
// those of TenantWrite.
type CompareAndSwap struct {
	TenantID   keyspace.TenantID `msgpack:"id"`
	TenantName string            `msgpack:"name"`
	Key        []byte            `msgpack:"k"`
	Old        []byte            `msgpack:"old,omitempty"`
	OldAbsent  bool              `msgpack:"oa,omitempty"`
	New        []byte            `msgpack:"new,omitempty"`
	NewAbsent  bool              `msgpack:"na,omitempty"`
	At         int64             `msgpack:"at,omitempty"`
}

func (*CompareAndSwap) Type() Type { return TypeCompareAndSwap }

func (c *CompareAndSwap) Validate() error {
	if err := c.TenantID.Check(); err != nil {
		return err
	}
	if err := keyspace.CheckKey(c.Key); err != nil {
		return err
	}
	if c.OldAbsent && len(c.Old) != 0 {
		return fmt.Errorf("%w: compare-and-swap expects absence and a value", ErrBadCommand)
	}
	if c.NewAbsent && len(c.New) != 0 {
		return fmt.Errorf("%w: compare-and-swap deletes and sets", ErrBadCommand)
	}
	if err := keyspace.CheckValue(c.Old); err != nil {
		return err
	}
	return keyspace.CheckValue(c.New)
}
