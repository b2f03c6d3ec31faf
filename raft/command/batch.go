package command

import (
	"encoding/binary"
	"fmt"
)

// # Batch entries
//
// A batch entry carries many commands in one raft log entry: the envelope
// with TypeBatch and, as body,
//
//	uvarint(n) n × (uvarint(len) command entry)
//
// Each command in it is applied as if it were an entry of its own, in
// order, at the batch's log index: refusing one refuses that one only. A
// batch whose framing is bad is refused whole, deterministically. Batches
// do not nest. The framing and its bounds can never change under
// TypeBatch: a new framing is a new type.

const (
	// TypeBatch is the type of a batch entry.
	TypeBatch Type = 12

	// MaxBatchCommands and MaxBatchBytes bound one batch entry; a command
	// larger than MaxBatchBytes goes alone.
	MaxBatchCommands = 256
	MaxBatchBytes    = 1 << 20
)

// Batchable reports whether cmd may travel in a batch entry: the tenant data
// commands, whose results are per tenant.
func Batchable(cmd Command) bool {
	switch cmd.(type) {
	case *TenantWrite, *TxnCommit, *CompareAndSwap:
		return true
	}
	return false
}

// EncodeBatch frames encoded commands (entries made by Encode) as one batch
// entry.
func EncodeBatch(datas [][]byte) []byte {
	n := 2 + binary.MaxVarintLen64
	for _, d := range datas {
		n += binary.MaxVarintLen64 + len(d)
	}
	b := make([]byte, 0, n)
	b = append(b, Version, byte(TypeBatch))
	b = binary.AppendUvarint(b, uint64(len(datas)))
	for _, d := range datas {
		b = binary.AppendUvarint(b, uint64(len(d)))
		b = append(b, d...)
	}
	return b
}

// IsBatch reports whether a log entry is a batch entry.
func IsBatch(data []byte) bool {
	return len(data) >= 2 && data[0] == Version && Type(data[1]) == TypeBatch
}

// DecodeBatch splits a batch entry (envelope included) into its commands,
// which alias entry. It never panics; bad framing is ErrBadCommand.
func DecodeBatch(entry []byte) ([][]byte, error) {
	if !IsBatch(entry) {
		return nil, fmt.Errorf("%w: not a batch entry", ErrBadCommand)
	}
	b := entry[2:]
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, fmt.Errorf("%w: batch: bad count", ErrBadCommand)
	}
	b = b[k:]
	if n == 0 || n > MaxBatchCommands || n > uint64(len(b)) {
		return nil, fmt.Errorf("%w: batch of %d commands in %d bytes", ErrBadCommand, n, len(b))
	}
	out := make([][]byte, 0, n)
	for range n {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, fmt.Errorf("%w: batch: command %d overruns the entry", ErrBadCommand, len(out))
		}
		out = append(out, b[k:k+int(l)])
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: batch: %d trailing bytes", ErrBadCommand, len(b))
	}
	return out, nil
}
