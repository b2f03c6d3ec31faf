package fsm

import (
	"errors"
	"fmt"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// # The cluster format
//
// Replicas of different builds apply the same log during a rolling
// upgrade. Refusing an entry this build does not know, as a malformed one
// is refused, would be deterministic only among replicas of the same build:
// the newer ones apply it, the older ones skip it, and the stores diverge
// without anyone noticing. So:
//
//   - An entry whose envelope version or type this build does not know
//     stops the machine, like a storage failure (fail, onFatal): it was
//     written by a newer release, and this replica cannot apply it, nor
//     anything after it. The operator upgrades the node, which then
//     resumes from the entry.
//   - The cluster format (command.Format) is replicated state, the meta key
//     "format" (absent: format 1). A SetFormat entry raises it; one above
//     this build's MaxFormat stops the machine as an unknown type does, one
//     at or below the current format changes nothing.
//   - An entry of a known type whose format is above the cluster format is
//     refused, deterministically, with ErrFormatNotEnabled: no replica
//     applies anything of a format the cluster has not enabled, so a
//     leader of a newer build cannot write ahead of the gate (Propose
//     refuses such commands before raft, so callers see the error early).
//
// The leader raises the format only once every member of the
// configuration said, over the client protocol, that its build knows it
// (server/format.go). An advertisement in the log would not do: it would
// itself be an entry type the older replicas do not know. The stored
// format is checked at startup and after a snapshot restore too, so that a
// replica of this build that was handed the state of a newer cluster stops
// before it applies anything.

// formatKey holds the cluster format.
var formatKey = keyspace.MetaKey("format")

// formatOf is command.FormatOf; tests replace it to pretend that a type
// of format 1 came later, as the gate has no other type to act on yet.
var formatOf = command.FormatOf

// gated is command.Gated under formatOf.
func gated(t command.Type) bool {
	return formatOf(t) > command.Format1 && t != command.TypeSetFormat
}

// formatStopError is why the machine stopped on an entry of a newer
// release. It matches ErrNewerFormat.
type formatStopError struct{ msg string }

func (e *formatStopError) Error() string        { return e.msg }
func (e *formatStopError) Is(target error) bool { return target == ErrNewerFormat }

const upgradeHint = "it was written by a newer release; upgrade this node (docs/OPERATIONS.md, Upgrades)"

func formatStop(format string, args ...any) error {
	return &formatStopError{msg: fmt.Sprintf(format, args...)}
}

// unknownEntryStop is the stop for entry data at index, which Decode
// refused as unknown.
func unknownEntryStop(index uint64, data []byte) error {
	if data[0] != command.Version {
		return formatStop("raft log entry %d has envelope version %d, which this build (formats up to %d) does not know: %s",
			index, data[0], command.MaxFormat, upgradeHint)
	}
	return formatStop("raft log entry %d has type %d, which this build (formats up to %d) does not know: %s",
		index, data[1], command.MaxFormat, upgradeHint)
}

// decodeFormat reads a stored cluster format.
func decodeFormat(v []byte) (command.Format, error) {
	n, err := keyspace.DecodeUint64(v)
	if err != nil || n == 0 || n > 1<<32-1 {
		return 0, fmt.Errorf("cluster format record %x: %w", v, keyspace.ErrInvalidRecord)
	}
	return command.Format(n), nil
}

// clusterFormat is the cluster format as this batch sees it.
func (a *applier) clusterFormat() (command.Format, error) {
	v, ok, err := a.get(formatKey)
	if err != nil || !ok {
		return command.Format1, err
	}
	f, err := decodeFormat(v)
	if err != nil {
		return 0, fatal("%w", err)
	}
	return f, nil
}

// checkFormat is the gate every decoded command passes before it applies:
// a type of a format the cluster has not enabled is refused, and a
// SetFormat beyond this build stops the machine.
func (a *applier) checkFormat(index uint64, cmd command.Command) error {
	if c, ok := cmd.(*command.SetFormat); ok && command.Format(c.Version) > command.MaxFormat {
		return formatStop("raft log entry %d raises the cluster format to %d, which this build (formats up to %d) does not know: %s",
			index, c.Version, command.MaxFormat, upgradeHint)
	}
	if !gated(cmd.Type()) {
		return nil
	}
	cur, err := a.clusterFormat()
	if err != nil {
		return err
	}
	if need := formatOf(cmd.Type()); need > cur {
		return fmt.Errorf("%w: entry type %d needs cluster format %d, the cluster is at %d", ErrFormatNotEnabled, cmd.Type(), need, cur)
	}
	return nil
}

// setFormat raises the cluster format; checkFormat has refused a version
// beyond this build.
func (a *applier) setFormat(c *command.SetFormat) error {
	cur, err := a.clusterFormat()
	if err != nil {
		return err
	}
	if command.Format(c.Version) <= cur {
		return nil // already there: every replica alike changes nothing
	}
	return a.set(formatKey, keyspace.EncodeUint64(uint64(c.Version)))
}

// applyStop tells, for the error met decoding, gating or validating the
// entry data at index, whether the machine must stop (the error to stop
// with) or refuse the entry (nil).
func applyStop(index uint64, data []byte, err error) error {
	var fe *fatalError
	switch {
	case errors.As(err, &fe), errors.Is(err, ErrNewerFormat):
		return err
	case errors.Is(err, command.ErrUnknownCommand) && len(data) >= 2:
		return unknownEntryStop(index, data)
	}
	return nil
}

// storedFormat reads the cluster format committed in st.
func storedFormat(st *store.Store) (command.Format, error) {
	v, err := st.System().Get(formatKey)
	if errors.Is(err, store.ErrNotFound) {
		return command.Format1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("fsm: read the cluster format: %w", err)
	}
	return decodeFormat(v)
}

// checkStoredFormat refuses a store whose cluster format this build does
// not know: it holds the state of a cluster of newer builds (a snapshot
// from one, or a downgrade), whose later entries this build could not
// apply.
func checkStoredFormat(st *store.Store) error {
	f, err := storedFormat(st)
	if err != nil {
		return err
	}
	if f > command.MaxFormat {
		return formatStop("the store holds cluster format %d, which this build (formats up to %d) does not know: "+
			"it was written by a newer release; upgrade this node (docs/OPERATIONS.md, Upgrades)", f, command.MaxFormat)
	}
	return nil
}

// ClusterFormat returns the cluster format as of the last applied batch: 1
// until a SetFormat raised it. A store it cannot read counts as format 1,
// which only makes callers wait.
func (f *Machine) ClusterFormat() command.Format {
	cur, err := storedFormat(f.store)
	if err != nil {
		return command.Format1
	}
	return cur
}
