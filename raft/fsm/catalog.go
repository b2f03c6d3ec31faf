package fsm

import (
	"container/heap"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/google/btree"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// catalog is the FSM's in-memory image of the replicated tenant map: every
// tenant record with its name, usage counters and version state, and every
// token record. It is a cache, never a source of truth: the store holds all
// of it, the applier writes the store first, and the catalog takes a batch's
// changes only after the batch committed, before the applied index moves.
// So whoever waited for index i (WaitApplied, a read barrier) finds the
// catalog at i or later, exactly as the store.
//
// It is rebuilt from the store when the FSM opens and after every snapshot
// restore. Lookups then cost a map access instead of a Pebble read and a
// msgpack decode: on every request the server checks the token and resolves
// the tenant, and on every write the applier reads the tenant, its usage
// and its version state, so these reads decide how the per-request cost
// grows with the number of tenants (it must not).
//
// Values in the maps are never modified once published: the applier copies
// an entry, changes the copy and publishes the copy. Readers may therefore
// keep a pointer after releasing the lock. Only the raft apply goroutine
// writes (merge, reset); it may read without the lock.
type catalog struct {
	mu      sync.RWMutex
	tenants map[keyspace.TenantID]*tenantState
	names   map[string]keyspace.TenantID
	tokens  map[string]*command.TokenRecord
	// byTenant indexes token IDs by the tenant they are bound to, for the
	// purge of a deleted tenant's tokens.
	byTenant map[keyspace.TenantID]map[string]struct{}
	// expiry orders the tenants with prunable history by the age of their
	// oldest entry (historymem.go). Only the apply goroutine uses it.
	expiry *expiryQueue
	// deadlines orders the tenants with a pending time-driven lifecycle
	// action by its deadline (lifecycle.go). Guarded by mu like the maps;
	// derived from the records, never stored.
	deadlines *btree.BTreeG[deadlineItem]
	// sweeps lists tenants whose conflict index holds many dead
	// boundaries, to sweep a little on every write (sweepHistories). Only
	// the apply goroutine uses it; it is local, not replicated state.
	sweeps []keyspace.TenantID
}

// tenantState is what the catalog holds per tenant.
type tenantState struct {
	rec   *keyspace.Tenant
	usage Usage
	ver   versionState
	// hist is the image of the tenant's retained write history
	// (historymem.go): entry heads for pruning, transaction IDs and the
	// conflict index; nil for a tenant never written. Unlike the rest of
	// the entry it is shared between copies and changed in place, by the
	// apply goroutine only, under its own lock (ValidateReads reads it): a
	// batch that fails stops the FSM, so it never runs ahead of the store
	// for anyone but a conservative check to see.
	hist *history
}

func newCatalog() *catalog {
	return &catalog{
		tenants:  map[keyspace.TenantID]*tenantState{},
		names:    map[string]keyspace.TenantID{},
		tokens:   map[string]*command.TokenRecord{},
		byTenant: map[keyspace.TenantID]map[string]struct{}{},
		expiry:   &expiryQueue{},

		deadlines: newDeadlines(),
	}
}

// loadCatalog reads the whole catalog from one snapshot of st, with the
// image of every tenant's retained write history (loadHistory) and the
// expiry order of the histories: reading every retained entry once, which
// the history's bounds bound.
func loadCatalog(st *store.Store) (*catalog, error) {
	sn := st.NewSnapshot()
	defer sn.Close()
	sys := sn.System()
	c := newCatalog()
	var decodeErr error
	scan := func(what string, start, end keyspace.SystemKey, fn func(k, v []byte) error) error {
		err := sys.Scan(start, end, func(k, v []byte) bool {
			decodeErr = fn(k, v)
			return decodeErr == nil
		})
		if err == nil {
			err = decodeErr
		}
		if err != nil {
			return fmt.Errorf("raft: load %s: %w", what, err)
		}
		return nil
	}
	start, end := keyspace.TenantRecordSpan()
	err := scan("tenant records", start, end, func(_, v []byte) error {
		t, err := keyspace.DecodeTenant(v)
		if err != nil {
			return err
		}
		e := &tenantState{rec: t}
		// The tenant's own records, through the view bound to its ID.
		m, err := sn.TenantMeta(t.ID)
		if err != nil {
			return err
		}
		if e.usage, err = readUsage(m, t.ID); err != nil {
			return fmt.Errorf("tenant %d usage: %w", t.ID, err)
		}
		vs, err := readVersionState(m, t.ID)
		if err != nil {
			return fmt.Errorf("tenant %d version state: %w", t.ID, err)
		}
		e.ver = *vs
		if vs.Count > 0 {
			if e.hist, err = loadHistory(m, t.ID, vs); err != nil {
				return err
			}
		}
		if vs.Count >= 2 {
			c.expiry.items = append(c.expiry.items, expiryItem{at: e.hist.front().at, id: t.ID})
		}
		c.tenants[t.ID] = e
		c.setDeadline(nil, t)
		return nil
	})
	if err != nil {
		return nil, err
	}
	heap.Init(c.expiry)
	start, end = keyspace.TenantNameSpan()
	err = scan("tenant names", start, end, func(k, v []byte) error {
		id, err := keyspace.DecodeTenantID(v)
		if err != nil {
			return err
		}
		name, ok := keyspace.TenantNameOf(k)
		if !ok {
			return fmt.Errorf("%w: %q in the name index", keyspace.ErrCorruptKey, k)
		}
		if e := c.tenants[id]; e == nil || e.rec.Name != name {
			return fmt.Errorf("%w: name %q points at tenant %d, which is not named so", keyspace.ErrInvalidRecord, name, id)
		}
		c.names[name] = id
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(c.names) != len(c.tenants) {
		return nil, fmt.Errorf("raft: load tenant names: %w: %d names for %d tenants", keyspace.ErrInvalidRecord, len(c.names), len(c.tenants))
	}
	start, end = keyspace.TokenSpan()
	err = scan("tokens", start, end, func(_, v []byte) error {
		t, err := decodeToken(v)
		if err != nil {
			return err
		}
		c.putToken(t)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// putToken and dropToken keep tokens and byTenant in step. The caller holds
// the write lock, or owns c alone.
func (c *catalog) putToken(t *command.TokenRecord) {
	if old := c.tokens[t.ID]; old != nil {
		c.dropToken(t.ID)
	}
	c.tokens[t.ID] = t
	if t.TenantID != 0 {
		ids := c.byTenant[t.TenantID]
		if ids == nil {
			ids = map[string]struct{}{}
			c.byTenant[t.TenantID] = ids
		}
		ids[t.ID] = struct{}{}
	}
}

func (c *catalog) dropToken(id string) {
	t := c.tokens[id]
	if t == nil {
		return
	}
	delete(c.tokens, id)
	if ids := c.byTenant[t.TenantID]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(c.byTenant, t.TenantID)
		}
	}
}

// tenant returns the entry of id, or nil.
func (c *catalog) tenant(id keyspace.TenantID) *tenantState {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.tenants[id]
}

// lookup returns the entry of the tenant named name, or nil.
func (c *catalog) lookup(name string) *tenantState {
	c.mu.RLock()
	defer c.mu.RUnlock()
	id, ok := c.names[name]
	if !ok {
		return nil
	}
	return c.tenants[id]
}

// token returns the token record id, or nil.
func (c *catalog) token(id string) *command.TokenRecord {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.tokens[id]
}

// merge publishes the changes of one committed batch.
func (c *catalog) merge(p *pending) {
	if p.empty() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, id := range p.names {
		if id == 0 {
			delete(c.names, name)
		} else {
			c.names[name] = id
		}
	}
	for id, e := range p.tenants {
		var old, n *keyspace.Tenant
		if o := c.tenants[id]; o != nil {
			old = o.rec
		}
		if e == nil {
			delete(c.tenants, id)
		} else {
			c.tenants[id] = e
			n = e.rec
		}
		c.setDeadline(old, n)
	}
	for id, t := range p.tokens {
		if t == nil {
			c.dropToken(id)
		} else {
			c.putToken(t)
		}
	}
}

// replace swaps in a freshly loaded catalog (after a restore).
func (c *catalog) replace(n *catalog) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tenants, c.names, c.tokens, c.byTenant, c.expiry, c.sweeps = n.tenants, n.names, n.tokens, n.byTenant, n.expiry, nil
	c.deadlines = n.deadlines
}

// pending is the catalog changes of the batch being applied: a nil entry or
// a zero ID marks a deletion. dirty lists the tenants whose usage counters
// or version state changed: the applier stores those once per batch
// (flushState), not once per write. The applier reads through it (overlay first,
// then the catalog), so a command sees what earlier commands of its batch
// did, as its store reads see their writes.
type pending struct {
	tenants map[keyspace.TenantID]*tenantState
	names   map[string]keyspace.TenantID
	tokens  map[string]*command.TokenRecord
	dirty   []keyspace.TenantID
}

func (p *pending) empty() bool {
	return len(p.tenants) == 0 && len(p.names) == 0 && len(p.tokens) == 0
}

// entry returns tenant id's current entry (nil if there is none). The
// result must not be modified: use mutable for that.
func (a *applier) entry(id keyspace.TenantID) *tenantState {
	if e, ok := a.p.tenants[id]; ok {
		return e
	}
	return a.cat.tenants[id] // the apply goroutine is the only writer
}

// mutable returns a copy of tenant id's entry that this batch owns and will
// publish; the tenant must exist.
func (a *applier) mutable(id keyspace.TenantID) *tenantState {
	if e := a.p.tenants[id]; e != nil {
		return e
	}
	cp := *a.cat.tenants[id]
	a.stage(id, &cp)
	return &cp
}

// stage records tenant id's new entry (nil: deleted).
func (a *applier) stage(id keyspace.TenantID, e *tenantState) {
	if a.p.tenants == nil {
		a.p.tenants = map[keyspace.TenantID]*tenantState{}
	}
	a.p.tenants[id] = e
}

func (a *applier) stageName(name string, id keyspace.TenantID) {
	if a.p.names == nil {
		a.p.names = map[string]keyspace.TenantID{}
	}
	a.p.names[name] = id
}

func (a *applier) stageToken(id string, t *command.TokenRecord) {
	if a.p.tokens == nil {
		a.p.tokens = map[string]*command.TokenRecord{}
	}
	a.p.tokens[id] = t
}

// dirty records that tenant id's usage or version state changed in this
// batch.
func (a *applier) dirty(id keyspace.TenantID) {
	if n := len(a.p.dirty); n > 0 && a.p.dirty[n-1] == id {
		return // the common case: writes of one tenant in a row
	}
	a.p.dirty = append(a.p.dirty, id)
}

// flushState stores the usage counters and version state of every tenant
// whose own changed in this batch, as they are at its end: the store then
// holds what it would if each write had stored them, with one write per
// tenant and batch instead of two per write. Nothing in a batch reads them
// back from the store (the applier reads the catalog), and a tenant deleted
// later in the batch is skipped, its metadata being gone with it. Must be
// called once, after the last command of the batch.
func (a *applier) flushState() error {
	if len(a.p.dirty) == 0 {
		return nil
	}
	ids := slices.Clone(a.p.dirty)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for _, id := range ids {
		e := a.p.tenants[id]
		if e == nil {
			continue // deleted in this batch
		}
		m, err := a.meta(id)
		if err != nil {
			return err
		}
		if err := setRecord(m, keyspace.TenantUsageKey(id), encodeUsage(e.usage)); err != nil {
			return err
		}
		if err := setRecord(m, keyspace.TenantVersionKey(id), encodeVersionState(&e.ver)); err != nil {
			return err
		}
	}
	return nil
}

// nameOwner returns the ID the name index maps name to, or 0.
func (a *applier) nameOwner(name string) keyspace.TenantID {
	if id, ok := a.p.names[name]; ok {
		return id
	}
	return a.cat.names[name]
}

// tokenRecord returns token id as this batch sees it, or nil.
func (a *applier) tokenRecord(id string) *command.TokenRecord {
	if t, ok := a.p.tokens[id]; ok {
		return t
	}
	return a.cat.tokens[id]
}

// tokensOf returns the IDs of the tokens bound to tenant id, as this batch
// sees them, sorted.
func (a *applier) tokensOf(id keyspace.TenantID) []string {
	ids := map[string]struct{}{}
	for tid := range a.cat.byTenant[id] {
		ids[tid] = struct{}{}
	}
	for tid, t := range a.p.tokens {
		if t != nil && t.TenantID == id {
			ids[tid] = struct{}{}
		} else {
			delete(ids, tid)
		}
	}
	out := make([]string, 0, len(ids))
	for tid := range ids {
		out = append(out, tid)
	}
	slices.Sort(out)
	return out
}

// copyTenant returns a copy of t that the caller owns.
func copyTenant(t *keyspace.Tenant) *keyspace.Tenant {
	cp := *t
	if t.Labels != nil {
		cp.Labels = maps.Clone(t.Labels)
	}
	return &cp
}
