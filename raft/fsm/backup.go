package fsm

import (
	"errors"
	"fmt"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// Backup is a point-in-time image of the whole replicated state (every
// tenant's data, the tenant map, token hashes, members and cluster
// metadata) for a backup file, with what a restore needs to know of it: its
// applied index and its cluster format. It is read as a whole-store stream
// (NewStream) and must be closed.
type Backup struct {
	snap   *store.Snapshot
	index  uint64
	format command.Format
}

// Backup captures the store for a backup. Unlike Snapshot it may be called
// from any goroutine, concurrently with ApplyBatch: a batch commits
// together with its applied index, so a store snapshot taken at any moment
// is the state at the applied index it records. It refuses while a restore
// is under way or left the store partial, and once the machine stopped. A
// restore that starts right after the check sets its marker in its first
// write; the stream refuses a snapshot that holds it (store.StoreStream).
func (f *Machine) Backup() (*Backup, error) {
	if _, failed, broken := f.state(); failed != nil || broken {
		return nil, fmt.Errorf("fsm: backup of a stopped machine: %w", ErrStopped)
	}
	if f.restoring.Load() {
		return nil, ErrRestoring
	}
	sn := f.store.NewSnapshot()
	b := &Backup{snap: sn}
	var err error
	if b.index, err = sn.AppliedIndex(); err != nil {
		sn.Close()
		return nil, fmt.Errorf("fsm: backup: read applied index: %w", err)
	}
	if b.format, err = formatAt(sn.System()); err != nil {
		sn.Close()
		return nil, fmt.Errorf("fsm: backup: %w", err)
	}
	return b, nil
}

// formatAt reads the cluster format committed in a view of the system
// keyspace (storedFormat's rule: absent is format 1).
func formatAt(sys *store.SystemView) (command.Format, error) {
	v, err := sys.Get(formatKey)
	if errors.Is(err, store.ErrNotFound) {
		return command.Format1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the cluster format: %w", err)
	}
	return decodeFormat(v)
}

// AppliedIndex returns the index of the last entry applied in the image.
func (b *Backup) AppliedIndex() uint64 { return b.index }

// Format returns the cluster format of the image.
func (b *Backup) Format() command.Format { return b.format }

// NewStream returns the image as a whole-store stream, the format
// store.Restore (and so Machine.Restore) reads. Close the stream before
// the Backup.
func (b *Backup) NewStream() (*store.StoreStream, error) { return b.snap.NewStoreStream() }

// Close releases the image.
func (b *Backup) Close() { _ = b.snap.Close() }
