package client

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// WatchKind says what a WatchEvent is.
type WatchKind uint8

// Kinds of watch events.
const (
	// WatchSet: Key was set to Value.
	WatchSet WatchKind = 1
	// WatchDelete: Key was deleted.
	WatchDelete WatchKind = 2
	// WatchDeleteRange: every key in [Key, End) was deleted (End empty: to
	// the end of the watched range), whether or not any existed.
	WatchDeleteRange WatchKind = 3
)

func (k WatchKind) String() string {
	switch k {
	case WatchSet:
		return "set"
	case WatchDelete:
		return "delete"
	case WatchDeleteRange:
		return "delete-range"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// WatchEvent is one change of a watched key or range.
type WatchEvent struct {
	// Version is the tenant version of the write that made the change.
	// Events come in version order; one write that changed several watched
	// keys gives several events with the same version, in the order the
	// write made them.
	Version uint64
	Kind    WatchKind
	Key     []byte
	// Value is the new value of a WatchSet.
	Value []byte
	// End bounds a WatchDeleteRange; it is clipped to the watched range.
	End []byte
}

// WatchOptions say what to watch and from when.
type WatchOptions struct {
	// Key watches one key. When nil, Range is watched instead.
	Key []byte
	// Range watches every key in it; Prefix(p) watches a prefix. The zero
	// KeyRange watches the whole tenant.
	Range KeyRange
	// FromVersion: deliver every change with a version after it. Use a
	// version the application read at (Tenant.ReadVersion,
	// Tx.ReadVersion, a commit's version) so that no change between the
	// read and the watch is missed; 0 means from the tenant's first write.
	// A version older than the tenant's retained write history (about 10
	// seconds of writes, see docs/TRANSACTIONS.md) fails with
	// ErrWatchTooOld: read again and watch from the new version.
	FromVersion uint64
	// PollWait is how long one request waits at the server for a change;
	// zero means 5s. It bounds how soon a watch notices a dead connection.
	PollWait time.Duration
}

// Watch returns the changes to the watched key or range after
// opts.FromVersion, in version order, as they happen, until ctx ends or
// the loop breaks. Each change is delivered exactly once, also across
// reconnects and leader changes: the watch resumes after the last version
// it delivered.
//
// The sequence ends after yielding an error: ctx's when it ends;
// ErrWatchTooOld when the history no longer reaches back to where the
// watch stands (it fell too far behind); ErrTenantNotFound when the tenant
// is deleted; ErrTenantLocked when it is locked; ErrRateLimited when the
// tenant has too many watches waiting when the watch starts (its
// MaxWatches limit, 100 per node by default; a watch already running waits
// for a place instead). Transient failures (no leader, broken connections) are
// retried until ctx ends.
//
// A watch is a series of long polls from the caller's goroutine, which
// must consume the sequence; it holds no goroutine of its own.
func (t *Tenant) Watch(ctx context.Context, opts WatchOptions) iter.Seq2[WatchEvent, error] {
	return func(yield func(WatchEvent, error) bool) {
		r := opts.Range
		if opts.Key != nil {
			if err := checkKey(opts.Key); err != nil {
				yield(WatchEvent{}, err)
				return
			}
			r = KeyRange{Begin: opts.Key, End: append(append([]byte(nil), opts.Key...), 0)}
		} else if err := checkRange(r.Begin, r.End); err != nil {
			yield(WatchEvent{}, err)
			return
		}
		if opts.PollWait < 0 {
			yield(WatchEvent{}, fmt.Errorf("%w: negative PollWait", ErrInvalidArgument))
			return
		}
		after := opts.FromVersion
		var tenantID uint64
		throttled := 0
		for {
			req := wire.Request{Op: wire.OpWatch, Tenant: t.name, Key: r.Begin, End: r.End,
				ReadVersion: after, TenantID: tenantID, Wait: opts.PollWait}
			var resp wire.Response
			err := t.db.do(ctx, &req, &resp, true)
			if errors.Is(err, ErrRateLimited) && tenantID != 0 {
				// The limit counts waiting polls: between two polls of a
				// running watch another may take its place. A watch that
				// was admitted once waits for a place again.
				throttled++
				if err := t.db.backoff(ctx, throttled+1, err); err != nil {
					yield(WatchEvent{}, err)
					return
				}
				continue
			}
			throttled = 0
			if err != nil {
				yield(WatchEvent{}, err)
				return
			}
			if tenantID == 0 {
				tenantID = resp.TenantID
			}
			for _, e := range resp.Events {
				if e.Version <= after {
					continue // never repeat an event, whatever a server sends
				}
				ev := WatchEvent{Version: e.Version, Kind: WatchKind(e.Kind), Key: e.Key, Value: e.Value, End: e.End}
				if ev.Kind == WatchSet && ev.Value == nil {
					ev.Value = []byte{}
				}
				if !yield(ev, nil) {
					return
				}
			}
			if resp.DataVersion > after {
				after = resp.DataVersion
			}
		}
	}
}
