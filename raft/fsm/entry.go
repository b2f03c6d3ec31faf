package fsm

import (
	"fmt"

	"github.com/tenantkv/tenantkv/raft/command"
)

// BatchResult is what the FSM returns for a batch entry: one result per
// command, in order.
type BatchResult struct {
	Results []*Result
}

// applyEntry applies one command entry, or each command of a batch entry.
// It returns a *Result or a *BatchResult; the error is a storage failure,
// or a command of the batch from a newer release (format.go), which stops
// the machine wherever it sits in the batch.
func (a *applier) applyEntry(index uint64, data []byte) (any, error) {
	if !command.IsBatch(data) {
		return a.apply(index, data)
	}
	subs, err := command.DecodeBatch(data)
	if err != nil {
		return &Result{Index: index, Err: err}, nil
	}
	out := &BatchResult{Results: make([]*Result, len(subs))}
	for i, sub := range subs {
		if command.IsBatch(sub) {
			out.Results[i] = &Result{Index: index, Err: fmt.Errorf("%w: nested batch", command.ErrBadCommand)}
			continue
		}
		r, err := a.apply(index, sub)
		if err != nil {
			return nil, err
		}
		out.Results[i] = r
	}
	return out, nil
}
