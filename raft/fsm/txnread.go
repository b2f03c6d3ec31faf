package fsm

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// The readers below read the local store as it is now, from one consistent
// snapshot each, and are safe for concurrent use. As for the other read
// helpers, call Node.ReadBarrier first for a linearizable answer.

// VersionInfo is a tenant's version and the extent of its write history.
type VersionInfo struct {
	// Version is the tenant's current version: the number of writes applied
	// to it since it was created.
	Version uint64
	// Oldest is the oldest version a transaction may read at, or a watch
	// resume after: every write after it is still in the history.
	Oldest uint64
}

// TenantVersion returns tenant id's version information. It does not check
// that the tenant exists (a missing tenant is at version 0).
func (f *Machine) TenantVersion(id keyspace.TenantID) (VersionInfo, error) {
	if err := id.Check(); err != nil {
		return VersionInfo{}, err
	}
	if err := f.checkReadable(); err != nil {
		return VersionInfo{}, err
	}
	e := f.cat.tenant(id)
	if e == nil {
		return VersionInfo{}, nil
	}
	return VersionInfo{Version: e.ver.Version, Oldest: e.ver.minReadVersion()}, nil
}

// ValidateReads checks a read-only transaction of tenant id, which read
// ranges at readVersion, against the write history: ErrTxTooOld if the
// history no longer reaches back to readVersion, ErrConflict if a later
// write touched a read range. On success the reads equal the tenant's state
// at the returned current version, so the transaction is serializable there.
// It writes nothing, so it needs no log entry; call it after a read barrier.
func (f *Machine) ValidateReads(id keyspace.TenantID, readVersion uint64, reads []command.KeyRange) (uint64, error) {
	if err := id.Check(); err != nil {
		return 0, err
	}
	for i := range reads {
		if err := keyspace.CheckRange(reads[i].Start, reads[i].End); err != nil {
			return 0, fmt.Errorf("read range %d: %w", i, err)
		}
	}
	if err := f.checkReadable(); err != nil {
		return 0, err
	}
	// The check reads the catalog's version state and the tenant's
	// history image (conflictindex.go), not the stored history: its cost
	// is in proportion to the reads, not to the writes since readVersion.
	st := &versionState{First: 1}
	var h *history
	if e := f.cat.tenant(id); e != nil {
		st, h = &e.ver, e.hist
	}
	if _, err := checkHistory(h, st, readVersion, normalizeRanges(reads), nil); err != nil {
		return 0, err
	}
	return st.Version, nil
}

// Change is one write of a tenant's history, as a watch delivers it.
type Change struct {
	// Version is the tenant version of the write. Changes of one version
	// come in the order the command wrote them.
	Version uint64
	// Kind is OpSet, OpDelete or OpDeleteRange.
	Kind command.OpKind
	// Key is the key set or deleted, or the start of a deleted range.
	Key []byte
	// End is the end of a deleted range (empty: the end of the tenant).
	End []byte
	// Value is the value set.
	Value []byte
}

// Changes returns the writes of tenant id after version `after` that touch
// r, in version order, and the version they are complete up to: every
// write in (after, upTo] that touches r is in the result. A delete-range is
// clipped to r. The result stops at a version boundary once it holds about
// maxBytes of keys and values (it holds at least one version with
// changes). ErrWatchTooOld means the history no longer reaches back to
// after; ErrTenantNotFound that the tenant does not exist. Every returned
// slice is the caller's.
func (f *Machine) Changes(id keyspace.TenantID, after uint64, r command.KeyRange, maxBytes int) (changes []Change, upTo uint64, err error) {
	if err := id.Check(); err != nil {
		return nil, 0, err
	}
	if err := keyspace.CheckRange(r.Start, r.End); err != nil {
		return nil, 0, err
	}
	if err := f.checkReadable(); err != nil {
		return nil, 0, err
	}
	sn := f.store.NewSnapshot()
	defer sn.Close()
	// The tenant is checked in the same snapshot: a deleted tenant's
	// history is gone with it.
	if _, err := tenantByID(sn.System(), id); err != nil {
		return nil, 0, err
	}
	m, err := sn.TenantMeta(id)
	if err != nil {
		return nil, 0, err
	}
	return readChanges(m, id, after, r, maxBytes)
}

// maxChangesScan bounds the history bytes one readChanges call reads:
// about one stored chunk of a large entry more than this at most.
const maxChangesScan = 4 << 20

// readChanges reads the changes of tenant id through m, the view of the
// records of the tenant the reader may read. The keys are computed from
// id; m refuses them (keyspace.ErrOutsideSpan) when it is bound to another
// tenant, so a wrong id returns an error and nothing of that tenant.
func readChanges(m *store.TenantMetaView, id keyspace.TenantID, after uint64, r command.KeyRange, maxBytes int) ([]Change, uint64, error) {
	st, err := readVersionState(m, id)
	if err != nil {
		return nil, 0, fmt.Errorf("raft: tenant %d version: %w", id, err)
	}
	if after > st.Version {
		return nil, 0, fmt.Errorf("raft: tenant %d: version %d is ahead of its version %d", id, after, st.Version)
	}
	if after < st.minReadVersion() {
		return nil, 0, fmt.Errorf("%w: after version %d, oldest retained %d", ErrWatchTooOld, after, st.minReadVersion())
	}
	rs := []command.KeyRange{r}
	var out []Change
	size, scanned := 0, 0
	upTo := st.Version
	err = scanHistory(m, id, after, st.Version, func(version uint64, head *entryHead, body []byte) (bool, error) {
		if head != nil && ((size >= maxBytes && len(out) > 0) || scanned >= maxChangesScan) {
			// Stop at this version boundary: everything before it is in.
			// A narrow watch over a long history stops after reading
			// maxChangesScan bytes of it, so that one call costs a bounded
			// read whatever the history holds; the caller resumes at upTo.
			upTo = version - 1
			return false, nil
		}
		scanned += len(body)
		err := eachRecord(body, func(rec *logRecord) bool {
			if !intersects(rs, rec) {
				return true
			}
			c := Change{Version: version, Kind: rec.Kind, Key: bytes.Clone(rec.Key)}
			switch rec.Kind {
			case command.OpSet:
				c.Value = bytes.Clone(rec.Value)
				if c.Value == nil {
					c.Value = []byte{}
				}
			case command.OpDeleteRange:
				c.End = bytes.Clone(rec.End)
				if bytes.Compare(c.Key, r.Start) < 0 {
					c.Key = bytes.Clone(r.Start)
				}
				if len(r.End) > 0 && (len(c.End) == 0 || bytes.Compare(c.End, r.End) > 0) {
					c.End = bytes.Clone(r.End)
				}
			}
			size += len(c.Key) + len(c.Value) + len(c.End) + 16
			out = append(out, c)
			return true
		})
		return true, err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("raft: tenant %d history: %w", id, err)
	}
	return out, upTo, nil
}

// OnApplied sets fn, which is called after every applied batch that changed
// tenants, with the IDs of the tenants whose data, version, state or
// existence changed (sorted), and with nil after a snapshot restore, which
// may have changed any tenant. fn runs on raft's apply goroutine, so it must
// not block; it is meant to wake waiters. It may be set at any time; nil
// removes it.
func (f *Machine) OnApplied(fn func(ids []keyspace.TenantID)) {
	if fn == nil {
		f.observer.Store(nil)
		return
	}
	f.observer.Store(&fn)
}

func (f *Machine) notify(touched map[keyspace.TenantID]struct{}) {
	fn := f.observer.Load()
	if fn == nil || len(touched) == 0 {
		return
	}
	ids := make([]keyspace.TenantID, 0, len(touched))
	for id := range touched {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	(*fn)(ids)
}

func (f *Machine) notifyAll() {
	if fn := f.observer.Load(); fn != nil {
		(*fn)(nil)
	}
}
