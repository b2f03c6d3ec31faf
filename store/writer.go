package store

import (
	"context"
	"io"

	"github.com/cockroachdb/pebble/v2"
)

// writer is where a view sends its mutations: a batch, or nowhere (the live
// views and snapshots). There is no writer onto the live DB: a write that
// did not come through a committed Batch would bypass raft.
type writer interface {
	set(k, v []byte) error
	del(k []byte) error
	delRange(start, end []byte) error
}

// batchWriter writes into a Batch, and refuses once the batch is committed or
// closed (its Pebble batch may then already serve another Batch).
type batchWriter struct{ b *Batch }

func (w batchWriter) set(k, v []byte) error {
	if w.b.done {
		return ErrClosed
	}
	return w.b.b.Set(k, v, nil)
}

func (w batchWriter) del(k []byte) error {
	if w.b.done {
		return ErrClosed
	}
	return w.b.b.Delete(k, nil)
}

func (w batchWriter) delRange(s, e []byte) error {
	if w.b.done {
		return ErrClosed
	}
	return w.b.b.DeleteRange(s, e, nil)
}

// dataWriter writes into the unindexed part of a Batch.
type dataWriter struct{ b *Batch }

func (w dataWriter) batch() (*pebble.Batch, error) {
	if w.b.done {
		return nil, ErrClosed
	}
	if w.b.data == nil {
		w.b.data = w.b.db.NewBatch()
	}
	return w.b.data, nil
}

func (w dataWriter) set(k, v []byte) error {
	pb, err := w.batch()
	if err != nil {
		return err
	}
	return pb.Set(k, v, nil)
}

func (w dataWriter) del(k []byte) error {
	pb, err := w.batch()
	if err != nil {
		return err
	}
	return pb.Delete(k, nil)
}

func (w dataWriter) delRange(s, e []byte) error {
	pb, err := w.batch()
	if err != nil {
		return err
	}
	return pb.DeleteRange(s, e, nil)
}

// committedReader reads the store a Batch was made from, as last committed,
// and refuses once the batch is committed or closed.
type committedReader struct{ b *Batch }

var _ pebble.Reader = committedReader{}

func (r committedReader) Get(k []byte) ([]byte, io.Closer, error) {
	if r.b.done {
		return nil, nil, ErrClosed
	}
	return r.b.db.Get(k)
}

func (r committedReader) NewIter(o *pebble.IterOptions) (*pebble.Iterator, error) {
	if r.b.done {
		return nil, ErrClosed
	}
	return r.b.db.NewIter(o)
}

func (r committedReader) NewIterWithContext(ctx context.Context, o *pebble.IterOptions) (*pebble.Iterator, error) {
	if r.b.done {
		return nil, ErrClosed
	}
	return r.b.db.NewIterWithContext(ctx, o)
}

// Close does nothing: the store owns its DB.
func (r committedReader) Close() error { return nil }

// batchReader reads through a Batch, and refuses once the batch is committed
// or closed, for the same reason as batchWriter.
type batchReader struct{ b *Batch }

var _ pebble.Reader = batchReader{}

func (r batchReader) Get(k []byte) ([]byte, io.Closer, error) {
	if r.b.done {
		return nil, nil, ErrClosed
	}
	return r.b.b.Get(k)
}

func (r batchReader) NewIter(o *pebble.IterOptions) (*pebble.Iterator, error) {
	if r.b.done {
		return nil, ErrClosed
	}
	return r.b.b.NewIter(o)
}

func (r batchReader) NewIterWithContext(ctx context.Context, o *pebble.IterOptions) (*pebble.Iterator, error) {
	if r.b.done {
		return nil, ErrClosed
	}
	return r.b.b.NewIterWithContext(ctx, o)
}

// Close does nothing: the Batch owns its Pebble batch.
func (r batchReader) Close() error { return nil }

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
