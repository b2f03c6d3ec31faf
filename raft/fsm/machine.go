package fsm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/store"
)

// Result is what applying one log entry produced. Propose returns it for a
// command that was applied; a refused command yields an error instead.
type Result struct {
	// Index is the raft log index of the entry.
	Index uint64
	// TenantID is the ID allocated by CreateTenant, or the tenant affected by
	// UpdateTenant and DeleteTenant.
	TenantID keyspace.TenantID
	// Tenant is the record after CreateTenant or UpdateTenant.
	Tenant *keyspace.Tenant
	// Replayed is set for an entry at or below the applied index recorded in
	// the store: it was applied before a restart and was skipped.
	Replayed bool
	// Version is the tenant version of the write of a TenantWrite,
	// TxnCommit or CompareAndSwap; for a TxnCommit or CompareAndSwap that
	// wrote nothing, the version it was checked at (0 for an empty
	// TenantWrite).
	Version uint64
	// Swapped reports whether a CompareAndSwap swapped.
	Swapped bool

	// Err is why the command was refused (nothing was applied), or, wrapping
	// ErrStopped, that its effect on this replica is unknown.
	Err error
}

// Machine applies committed log entries to a store.Store: each batch of
// entries becomes one store.Batch, committed without fsync together with
// the index of the batch's last entry.
//
// ApplyBatch, Snapshot and Restore are called from one goroutine (raft's
// apply loop). The read helpers (LookupTenant, Token, ...), AppliedIndex
// and WaitApplied are safe for concurrent use with them and with each
// other. The machine does not own the store: closing it is the caller's
// business.
type Machine struct {
	store   *store.Store
	logger  *slog.Logger
	onFatal func(error)
	// restores counts successful Restore calls; batches and entries count
	// ApplyBatch calls and the entries they applied. For Stats and tests.
	restores atomic.Int64
	batches  atomic.Int64
	entries  atomic.Int64

	mu sync.Mutex
	// commit writes a batch; tests replace it (under mu) to inject storage
	// failures.
	commit  func(b *store.Batch, index uint64) error
	applied uint64
	// advanced is closed and replaced each time applied changes or the FSM
	// stops, to wake WaitApplied callers.
	advanced chan struct{}
	// failed is set once the FSM met a storage error; from then on it
	// applies nothing and every waiter gets ErrShutdown.
	failed error
	// restoreBroken is set while the store holds a partial restore: no entry
	// may be applied on top of it until a Restore succeeds.
	restoreBroken bool

	// cat is the in-memory image of tenants and tokens (catalog.go).
	cat *catalog
	// restoring is set while the store holds a partial restore (from the
	// start of Restore until its catalog is loaded, for good if it
	// fails): the read helpers then answer ErrRestoring instead of
	// describing a state the store no longer holds.
	restoring atomic.Bool

	// observer is the function set by OnApplied (txnread.go).
	observer atomic.Pointer[func([]keyspace.TenantID)]
}

// New returns a machine over st, starting from the applied index recorded in
// st. onFatal, which may be nil, is called once, from the raft apply
// goroutine, if the store fails under the FSM; it must not block (the Node
// passes a function that shuts the node down asynchronously). A nil logger
// discards.
func New(st *store.Store, logger *slog.Logger, onFatal func(error)) (*Machine, error) {
	if st == nil {
		return nil, errors.New("fsm: New: nil store")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	applied, err := st.AppliedIndex()
	if err != nil {
		return nil, fmt.Errorf("fsm: read applied index: %w", err)
	}
	broken, err := st.RestoreIncomplete()
	if err != nil {
		return nil, fmt.Errorf("fsm: check restore marker: %w", err)
	}
	cat := newCatalog()
	if !broken { // a partial restore is loaded by the Restore that repairs it
		if err := checkStoredFormat(st); err != nil { // format.go
			return nil, err
		}
		if cat, err = loadCatalog(st); err != nil {
			return nil, err
		}
	}
	f := &Machine{
		store:         st,
		logger:        logger,
		onFatal:       onFatal,
		applied:       applied,
		advanced:      make(chan struct{}),
		restoreBroken: broken,
		cat:           cat,
	}
	f.restoring.Store(broken)
	f.commit = func(b *store.Batch, index uint64) error { return b.Commit(index, false) }
	return f, nil
}

// checkReadable returns ErrRestoring while a snapshot restore is under way
// or left the store partial.
func (f *Machine) checkReadable() error {
	if f.restoring.Load() {
		return ErrRestoring
	}
	return nil
}

// Restoring reports whether the node is installing a snapshot (or a restore
// failed and left the store partial): nothing it holds may be served.
func (f *Machine) Restoring() bool { return f.restoring.Load() }

// AppliedIndex returns the index of the last entry applied to the store (or
// skipped because it was applied before a restart).
func (f *Machine) AppliedIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

// WaitApplied blocks until the FSM has applied index idx, ctx ends (the
// context's error is returned, wrapped) or the FSM stops (ErrShutdown).
func (f *Machine) WaitApplied(ctx context.Context, idx uint64) error {
	for {
		f.mu.Lock()
		applied, failed, ch := f.applied, f.failed, f.advanced
		f.mu.Unlock()
		if applied >= idx {
			return nil
		}
		if failed != nil {
			return fmt.Errorf("%w: %v", ErrStopped, failed)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("fsm: wait for index %d (applied %d): %w", idx, applied, ctx.Err())
		}
	}
}

// setApplied records idx as applied and wakes waiters. It may move the index
// backwards (after Restore).
func (f *Machine) setApplied(idx uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = idx
	close(f.advanced)
	f.advanced = make(chan struct{})
}

// stop makes the FSM refuse further work and wakes waiters. It reports
// whether this call stopped it (false if it was already stopped).
func (f *Machine) stop(err error) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failed != nil {
		return false
	}
	f.failed = err
	close(f.advanced)
	f.advanced = make(chan struct{})
	return true
}

func (f *Machine) state() (applied uint64, failed error, broken bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied, f.failed, f.restoreBroken
}

// fail stops the FSM after a storage error and tells the owner.
func (f *Machine) fail(err error) {
	if !f.stop(err) {
		return
	}
	msg := "fsm: storage failure; stopping the node so that this replica cannot diverge"
	if errors.Is(err, ErrNewerFormat) {
		msg = "fsm: the log was written by a newer release; stopping the node so that this replica cannot diverge (docs/OPERATIONS.md, Upgrades)"
	}
	f.logger.Error(msg, "error", err)
	if f.onFatal != nil {
		f.onFatal(err)
	}
}

// Entry is one committed raft log entry, as the machine sees it.
type Entry struct {
	// Index is the entry's raft log index.
	Index uint64
	// Command is set for a command entry (Data is a command or batch entry
	// of package command). Other entries (configuration changes) only move
	// the applied index.
	Command bool
	Data    []byte
}

// ApplyBatch applies committed entries in one store batch and returns one
// result per entry: a *Result for a command entry, a *BatchResult for a
// batch entry, nil for other entries. Entries at or below the applied index
// are skipped with a Replayed result. The batch is committed together with
// the index of its last entry, so a restart resumes exactly after it.
//
// A refused command yields a Result carrying its error and writes nothing.
// If the store fails, every command entry of the batch gets a result
// wrapping ErrStopped (its effect on this replica is unknown), the machine
// stops and onFatal is called: applying later entries on top of a missing
// batch would make this replica diverge.
func (f *Machine) ApplyBatch(logs []Entry) []any {
	out := make([]any, len(logs))
	if len(logs) == 0 {
		return out
	}
	applied, failed, broken := f.state()
	if failed == nil && broken {
		f.fail(errors.New("store holds an incomplete snapshot restore"))
		_, failed, _ = f.state()
	}
	if failed != nil {
		failAll(out, logs, failed)
		return out
	}
	last := logs[len(logs)-1].Index
	if last <= applied {
		for i, l := range logs {
			out[i] = replayed(l)
		}
		return out
	}

	b := f.store.NewBatch()
	a := newApplier(b, f.cat)
	defer a.close()
	for i, l := range logs {
		if l.Index <= applied {
			out[i] = replayed(l)
			continue
		}
		if !l.Command {
			continue // configuration entries: raft keeps them, the machine has nothing to do
		}
		res, err := a.applyEntry(l.Index, l.Data)
		if err != nil { // only storage failures and newer entries reach here
			b.Close()
			f.fail(err)
			failAll(out, logs, err)
			return out
		}
		out[i] = res
	}
	if err := a.flushState(); err != nil {
		b.Close()
		f.fail(err)
		failAll(out, logs, err)
		return out
	}
	f.mu.Lock()
	commit := f.commit
	f.mu.Unlock()
	if err := commit(b, last); err != nil {
		f.fail(fmt.Errorf("commit batch ending at index %d: %w", last, err))
		failAll(out, logs, err)
		return out
	}
	f.cat.merge(&a.p) // before the index moves: see catalog
	f.setApplied(last)
	f.notify(a.touched)
	f.batches.Add(1)
	f.entries.Add(int64(len(logs)))
	return out
}

func replayed(l Entry) any {
	if !l.Command {
		return nil
	}
	return &Result{Index: l.Index, Replayed: true}
}

func failAll(out []any, logs []Entry, cause error) {
	for i, l := range logs {
		if l.Command {
			out[i] = &Result{Index: l.Index, Err: fmt.Errorf("%w: replica storage failure: %v", ErrStopped, cause)}
		} else {
			out[i] = nil
		}
	}
}

// Snapshot captures the store at the current applied index. It is cheap (a
// Pebble snapshot); the work happens in WriteTo, concurrently with later
// applies.
func (f *Machine) Snapshot() (*Snapshot, error) {
	if _, failed, broken := f.state(); failed != nil || broken {
		return nil, fmt.Errorf("fsm: snapshot of a stopped machine: %w", ErrStopped)
	}
	return &Snapshot{store: f.store, snap: f.store.NewSnapshot()}, nil
}

// Restore replaces the whole store with a snapshot stream and reloads the
// applied index from it. If it fails midway the store stays marked as
// partially restored and the FSM refuses to apply until a Restore succeeds.
func (f *Machine) Restore(rc io.Reader) error {
	if _, failed, _ := f.state(); failed != nil {
		return fmt.Errorf("fsm: restore into a stopped machine: %w", ErrStopped)
	}
	f.mu.Lock()
	f.restoreBroken = true
	f.mu.Unlock()
	f.restoring.Store(true)
	if err := f.store.Restore(rc); err != nil {
		return fmt.Errorf("fsm: restore snapshot: %w", err)
	}
	idx, err := f.store.AppliedIndex()
	if err != nil {
		return fmt.Errorf("fsm: restore snapshot: read applied index: %w", err)
	}
	if err := checkStoredFormat(f.store); err != nil { // format.go
		f.fail(err)
		return fmt.Errorf("fsm: restore snapshot: %w", err)
	}
	cat, err := loadCatalog(f.store)
	if err != nil {
		return fmt.Errorf("fsm: restore snapshot: %w", err)
	}
	f.cat.replace(cat)
	f.mu.Lock()
	f.restoreBroken = false
	f.mu.Unlock()
	f.restoring.Store(false)
	f.setApplied(idx)
	f.notifyAll()
	f.restores.Add(1)
	f.logger.Info("fsm: restored store from snapshot", "applied_index", idx)
	return nil
}

// Snapshot is a point-in-time image of the machine's store.
type Snapshot struct {
	store *store.Store
	snap  *store.Snapshot
}

// WriteTo makes the store durable up to (at least) the snapshot, then
// streams the snapshot into w in store.Restore's format. The sync comes
// first because once the snapshot is kept raft may truncate the log entries
// that the unsynced store writes came from.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	if err := s.store.Sync(); err != nil {
		return 0, fmt.Errorf("fsm: persist snapshot: %w", err)
	}
	n, err := s.snap.WriteTo(w)
	if err != nil {
		return n, fmt.Errorf("fsm: persist snapshot: %w", err)
	}
	return n, nil
}

// Close releases the snapshot.
func (s *Snapshot) Close() { _ = s.snap.Close() }

// Stop makes the machine refuse further work and wakes waiters with
// ErrStopped. The node calls it when it shuts down.
func (f *Machine) Stop() { f.stop(ErrStopped) }

// Stats are counters of the machine's work, for diagnostics.
type Stats struct {
	// Restores counts snapshot restores, Batches the batches applied and
	// Entries the entries in them.
	Restores, Batches, Entries int64
}

// Stats returns the machine's counters.
func (f *Machine) Stats() Stats {
	return Stats{Restores: f.restores.Load(), Batches: f.batches.Load(), Entries: f.entries.Load()}
}

// FailCommits makes every later batch fail to commit with err, as a store
// whose disk fails would. It exists for the fault tests of the packages
// above (a storage failure must stop the node); nothing else calls it.
func (f *Machine) FailCommits(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commit = func(b *store.Batch, _ uint64) error { b.Close(); return err }
}
