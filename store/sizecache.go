package store

import (
	"sync"

	"github.com/tenantkv/tenantkv/keyspace"
)

// # The size cache
//
// The raft applier keeps each tenant's logical bytes exact, so every write
// needs the size of the value it replaces, and reading it (a seek through
// the memtables and the tables' filters) was a quarter of a follower's CPU
// under a steady write load. The store remembers, for keys written
// recently, the size of the user value each holds in the committed store
// (or that it holds none), and answers CommittedSize from memory.
//
// It is exact by construction: an entry changes only when a committed batch
// wrote its key. Every tenant write of a Batch leaves a note; Commit applies
// the notes after Pebble took the batch, in the order Pebble applied the
// writes; a failed commit, a restore and a delete-range (which does not
// name its keys) forget what they may have changed: the whole cache, or the
// tenant's entries. Keys longer than maxCachedKey are never cached. It is
// bounded: past maxCachedKeys entries it starts again empty. A lookup that
// misses costs one map access more than the read it then makes.

const (
	maxCachedKeys = 1 << 17 // about 10 MiB with 16-byte keys
	maxCachedKey  = 256
)

// sizeCache is safe for concurrent use.
type sizeCache struct {
	mu      sync.Mutex
	tenants map[keyspace.TenantID]map[string]int32 // size, or absentSize
	n       int
}

const absentSize = -1

// sizeNote is one write of a batch, as the cache sees it.
type sizeNote struct {
	tenant keyspace.TenantID
	key    string
	size   int32 // a size, absentSize, forgetTenant or forgetAll
}

const (
	forgetTenant = -2 // a delete-range in the tenant's data
	forgetAll    = -3 // anything the cache cannot follow
)

func (c *sizeCache) lookup(id keyspace.TenantID, key []byte) (size int, present, ok bool) {
	c.mu.Lock()
	s, ok := c.tenants[id][string(key)]
	c.mu.Unlock()
	if !ok {
		return 0, false, false
	}
	if s == absentSize {
		return 0, false, true
	}
	return int(s), true, true
}

// apply records the notes of a committed batch, in order.
func (c *sizeCache) apply(notes []sizeNote) {
	if len(notes) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range notes {
		nt := &notes[i]
		switch nt.size {
		case forgetAll:
			c.tenants, c.n = nil, 0
		case forgetTenant:
			c.n -= len(c.tenants[nt.tenant])
			delete(c.tenants, nt.tenant)
		default:
			if c.n >= maxCachedKeys {
				c.tenants, c.n = nil, 0
			}
			if c.tenants == nil {
				c.tenants = map[keyspace.TenantID]map[string]int32{}
			}
			m := c.tenants[nt.tenant]
			if m == nil {
				m = map[string]int32{}
				c.tenants[nt.tenant] = m
			}
			if _, had := m[nt.key]; !had {
				c.n++
			}
			m[nt.key] = nt.size
		}
	}
}

// reset forgets everything.
func (c *sizeCache) reset() {
	c.mu.Lock()
	c.tenants, c.n = nil, 0
	c.mu.Unlock()
}

// CommittedSize returns the size of key's value in the store as last
// committed, and whether the key holds one, when the store remembers it
// (ok); otherwise the caller reads it. Only a view made by
// Batch.TenantUnindexed, which reads the committed store, answers; any
// other says !ok.
func (v *TenantView) CommittedSize(key []byte) (size int, present, ok bool) {
	r, isCommitted := v.r.(committedReader)
	if !isCommitted || r.b.sizes == nil || len(key) > maxCachedKey {
		return 0, false, false
	}
	return r.b.sizes.lookup(v.id, key)
}

// note records, in the batch v writes into, what a write does to the cache.
func (v *TenantView) note(key []byte, size int32) {
	var b *Batch
	var data bool
	switch w := v.w.(type) {
	case batchWriter:
		b = w.b
	case dataWriter:
		b, data = w.b, true
	default:
		return
	}
	if b.sizes == nil {
		return
	}
	if size >= absentSize && len(key) > maxCachedKey {
		return // never cached, so nothing to change
	}
	nt := sizeNote{tenant: v.id, size: size}
	if size >= absentSize {
		nt.key = string(key)
	}
	if data {
		b.dataNotes = append(b.dataNotes, nt)
	} else {
		b.notes = append(b.notes, nt)
	}
}
