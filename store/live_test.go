package store

import (
	"github.com/cockroachdb/pebble/v2"

	"github.com/tenantkv/tenantkv/keyspace"
)

// liveWriter commits every write on its own, synced. Production code has
// no writer onto the live database (every write goes through a Batch the
// state machine commits); the tests of this package use it to set up and
// change state through views without a batch around each write.
type liveWriter struct{ db *pebble.DB }

func (w liveWriter) set(k, v []byte) error      { return w.db.Set(k, v, pebble.Sync) }
func (w liveWriter) del(k []byte) error         { return w.db.Delete(k, pebble.Sync) }
func (w liveWriter) delRange(s, e []byte) error { return w.db.DeleteRange(s, e, pebble.Sync) }

// liveTenant is a view of tenant id over the live database whose writes are
// committed one by one.
func (s *Store) liveTenant(id keyspace.TenantID) (*TenantView, error) {
	return newTenantView(id, s.db, liveWriter{s.db})
}

// liveSystem is the system view over the live database with writes
// committed one by one.
func (s *Store) liveSystem() *SystemView { return &SystemView{r: s.db, w: liveWriter{s.db}} }

// liveMeta makes writable tenant-record views over the live database, for
// tests that seed records without a batch (Store.TenantMeta is read-only).
type liveMeta struct{ s *Store }

func (l liveMeta) TenantMeta(id keyspace.TenantID) (*TenantMetaView, error) {
	return newTenantMetaView(id, l.s.db, liveWriter{l.s.db})
}
