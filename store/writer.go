package store

import (
	"github.com/cockroachdb/pebble/v2"
)

// writer is where a view sends its mutations: the live DB (each write its own
// synced commit), a batch, or nowhere (snapshots).
type writer interface {
	set(k, v []byte) error
	del(k []byte) error
	delRange(start, end []byte) error
}

type liveWriter struct{ db *pebble.DB }

func (w liveWriter) set(k, v []byte) error      { return w.db.Set(k, v, pebble.Sync) }
func (w liveWriter) del(k []byte) error         { return w.db.Delete(k, pebble.Sync) }
func (w liveWriter) delRange(s, e []byte) error { return w.db.DeleteRange(s, e, pebble.Sync) }

type batchWriter struct{ b *pebble.Batch }

func (w batchWriter) set(k, v []byte) error      { return w.b.Set(k, v, nil) }
func (w batchWriter) del(k []byte) error         { return w.b.Delete(k, nil) }
func (w batchWriter) delRange(s, e []byte) error { return w.b.DeleteRange(s, e, nil) }

type readOnlyWriter struct{}

func (readOnlyWriter) set(k, v []byte) error      { return ErrReadOnly }
func (readOnlyWriter) del(k []byte) error         { return ErrReadOnly }
func (readOnlyWriter) delRange(s, e []byte) error { return ErrReadOnly }

// get reads k from r and returns a copy of its value.
func get(r pebble.Reader, k []byte) ([]byte, error) {
	v, closer, err := r.Get(k)
	if err == pebble.ErrNotFound {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(v))
	copy(out, v)
	closer.Close()
	return out, nil
}
