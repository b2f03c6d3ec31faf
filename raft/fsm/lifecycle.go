package fsm

import (
	"fmt"
	"time"

	"github.com/google/btree"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
)

// # The tenant lifecycle (format 4)
//
// keyspace.Transition decides every lifecycle action; this file applies
// them. The time of a decision is the one the command carries (Lifecycle.At),
// never a clock, so every replica decides alike, and an expiry or purge
// that is stale (the tenant was activated or restored since, or the entry
// is replayed after a restart) finds its deadline gone or not reached and
// is refused, changing nothing.
//
// The leader proposes the time-driven actions. It finds them in the
// catalog's deadline index, a btree of (deadline, tenant) kept in step with
// the published catalog by merge and rebuilt with it at load and restore,
// so a tick costs O(log n + due), whatever the number of tenants; nothing
// of it is replicated (it is derived from the records).

// deadlineItem is one tenant's pending time-driven action.
type deadlineItem struct {
	at     int64 // Unix nanoseconds
	id     keyspace.TenantID
	action keyspace.Action
}

func deadlineLess(a, b deadlineItem) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.id < b.id
}

func newDeadlines() *btree.BTreeG[deadlineItem] {
	return btree.NewG(btreeDegree, deadlineLess)
}

// deadlineOf returns t's pending deadline, if it has one.
func deadlineOf(t *keyspace.Tenant) (deadlineItem, bool) {
	a, at, ok := t.Deadline()
	if !ok {
		return deadlineItem{}, false
	}
	return deadlineItem{at: at.UnixNano(), id: t.ID, action: a}, true
}

// setDeadline moves tenant id's deadline from what old had to what n has
// (either may be nil). The caller holds c's write lock, or owns c alone.
func (c *catalog) setDeadline(old, n *keyspace.Tenant) {
	if old != nil {
		if d, ok := deadlineOf(old); ok {
			c.deadlines.Delete(d)
		}
	}
	if n != nil {
		if d, ok := deadlineOf(n); ok {
			c.deadlines.ReplaceOrInsert(d)
		}
	}
}

// Due is a time-driven lifecycle action whose deadline has passed.
type Due struct {
	ID     keyspace.TenantID
	Name   string
	Action keyspace.Action
	At     time.Time // the deadline
}

// DueActions returns up to max lifecycle actions whose deadline is at or
// before now, earliest first: trials that ended and retentions that ran
// out. The leader proposes them (command.Lifecycle with At = now). The
// cost is O(log n + max), however many tenants there are.
func (f *Machine) DueActions(now time.Time, max int) []Due {
	if max <= 0 || f.checkReadable() != nil {
		return nil
	}
	f.cat.mu.RLock()
	defer f.cat.mu.RUnlock()
	var out []Due
	limit := now.UnixNano()
	f.cat.deadlines.Ascend(func(d deadlineItem) bool {
		if d.at > limit || len(out) == max {
			return false
		}
		if e := f.cat.tenants[d.id]; e != nil {
			out = append(out, Due{ID: d.id, Name: e.rec.Name, Action: d.action, At: time.Unix(0, d.at)})
		}
		return true
	})
	return out
}

// NextDeadline returns the earliest pending deadline, and false when no
// tenant has one.
func (f *Machine) NextDeadline() (time.Time, bool) {
	f.cat.mu.RLock()
	defer f.cat.mu.RUnlock()
	d, ok := f.cat.deadlines.Min()
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(0, d.at), true
}

// createTrialTenant creates a tenant in trial until c.TrialEnds.
func (a *applier) createTrialTenant(c *command.CreateTrialTenant, res *Result) error {
	return a.create(&keyspace.Tenant{
		Name: c.Name, State: keyspace.StateTrial, Limits: c.Limits,
		Labels: labelsOf(c.Labels), CreatedAt: c.CreatedAt, TrialEnds: c.TrialEnds,
	}, res)
}

// lifecycle applies a lifecycle action (command.Lifecycle).
func (a *applier) lifecycle(c *command.Lifecycle, res *Result) error {
	cur, err := a.tenant(c.ID)
	if err != nil {
		return err
	}
	if cur.Name != c.Name {
		return fmt.Errorf("%w: id %d is named %q, not %q", ErrTenantNotFound, c.ID, cur.Name, c.Name)
	}
	at := time.Unix(0, c.At)
	to, err := keyspace.Transition(cur, c.Action, at)
	if err != nil {
		return err
	}
	if to == 0 || (c.Action == keyspace.ActionCancel && c.Retention == 0) {
		// The retention ended, or the operator asked for none: purge,
		// exactly as DeleteTenant does.
		return a.purge(cur, res)
	}
	t := copyTenant(cur)
	t.State = to
	t.TrialEnds, t.PurgeAt = time.Time{}, time.Time{}
	if c.Action == keyspace.ActionCancel {
		t.PurgeAt = at.Add(time.Duration(c.Retention))
	}
	rec, err := keyspace.EncodeTenant(t)
	if err != nil {
		return err
	}
	if err := a.set(keyspace.TenantRecordKey(t.ID), rec); err != nil {
		return err
	}
	a.mutable(t.ID).rec = t
	res.TenantID, res.Tenant = t.ID, copyTenant(t)
	a.touch(t.ID)
	after := "state=" + t.State.String()
	if !t.PurgeAt.IsZero() {
		after += " purge_at=" + t.PurgeAt.UTC().Format(time.RFC3339)
	}
	actor := c.Actor
	if actor == "" {
		actor = command.ActorSystem
	}
	return a.audit(t.ID, c.At, actor, c.Action.String(), "state="+cur.State.String(), after) // audit.go
}

// TenantState returns the state of tenant id, and false when there is no
// such tenant. It allocates nothing: the server asks on every request of
// a tenant token (a cancelled tenant's tokens are refused).
func (f *Machine) TenantState(id keyspace.TenantID) (keyspace.State, bool) {
	e := f.cat.tenant(id)
	if e == nil {
		return 0, false
	}
	return e.rec.State, true
}
