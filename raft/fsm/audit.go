package fsm

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// # The audit trail (format 4)
//
// Every change to a tenant made by an audited command (command.Audited
// around an operator's create, update and token commands; Lifecycle;
// AuditNote) appends one event to the tenant's own trail, in its metadata
// span (keyspace.AuditEventKey), in the same batch as the change: the
// trail is replicated, snapshotted and restored with the tenant, and
// purged with it. An event holds the time carried by the command, the
// actor (an operator token ID, a tenant token ID, or "system"), its kind,
// a description of the before and the after, and the SHA-256 of the
// previous event's stored bytes: a hash chain, so that a changed, missing
// or reordered event shows (VerifyAudit). The trail's state record holds
// its extent and both ends of the chain; AuditPrune drops the oldest
// events in bounded batches, and the state then keeps the hash that the
// first kept event names as its predecessor, so the rest still verifies.
//
// Events of refused commands are never written: a refusal changes
// nothing, the trail included.

// AuditEvent is one event of a tenant's audit trail.
type AuditEvent struct {
	Seq    uint64
	At     time.Time
	Actor  string
	Kind   string
	Before string
	After  string
	// Prev is the SHA-256 of the previous event's stored bytes (of the
	// trail's start, all zeros, for the first event ever); Hash that of
	// this event's.
	Prev, Hash []byte
}

// storedEvent is an event as stored; its msgpack bytes are what the chain
// hashes.
type storedEvent struct {
	Seq    uint64 `msgpack:"seq"`
	At     int64  `msgpack:"at"`
	Actor  string `msgpack:"actor"`
	Kind   string `msgpack:"kind"`
	Before string `msgpack:"before,omitempty"`
	After  string `msgpack:"after,omitempty"`
	Prev   []byte `msgpack:"prev"`
}

// auditState is a trail's extent: events First..Next-1 are kept; Base is
// the Prev of event First (the hash of the last dropped event, or zeros),
// Last the hash of event Next-1 (Base when the trail is empty).
type auditState struct {
	First uint64 `msgpack:"first"`
	Next  uint64 `msgpack:"next"`
	Base  []byte `msgpack:"base"`
	Last  []byte `msgpack:"last"`
}

var zeroHash = make([]byte, sha256.Size)

func readAuditState(m *store.TenantMetaView) (*auditState, error) {
	v, err := m.Get(keyspace.AuditStateKey(m.ID()))
	if errors.Is(err, store.ErrNotFound) {
		return &auditState{First: 1, Next: 1, Base: zeroHash, Last: zeroHash}, nil
	}
	if err != nil {
		return nil, err
	}
	var st auditState
	if err := command.Unmarshal(v, &st); err != nil {
		return nil, fmt.Errorf("%w: audit state of tenant %d: %v", keyspace.ErrInvalidRecord, m.ID(), err)
	}
	return &st, nil
}

// truncate bounds an event's description.
func truncate(s string) string {
	if len(s) <= command.MaxAuditText {
		return s
	}
	return s[:command.MaxAuditText-3] + "..."
}

// audit appends an event to tenant id's trail. It only writes, after the
// command's own checks and writes: any error is a storage failure.
func (a *applier) audit(id keyspace.TenantID, at int64, actor, kind, before, after string) error {
	m, err := a.meta(id)
	if err != nil {
		return err
	}
	st, err := readAuditState(m)
	if err != nil {
		return fatal("%w", err)
	}
	ev := storedEvent{Seq: st.Next, At: at, Actor: actor, Kind: kind, Before: truncate(before), After: truncate(after), Prev: st.Last}
	b, err := command.Marshal(&ev)
	if err != nil {
		return fatal("encode an audit event: %w", err)
	}
	h := sha256.Sum256(b)
	st.Next, st.Last = st.Next+1, h[:]
	sb, err := command.Marshal(st)
	if err != nil {
		return fatal("encode an audit state: %w", err)
	}
	if err := setRecord(m, keyspace.AuditEventKey(id, ev.Seq), b); err != nil {
		return err
	}
	return setRecord(m, keyspace.AuditStateKey(id), sb)
}

// describeTenant is the description of a tenant's record in events.
func describeTenant(t *keyspace.Tenant) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name=%s state=%s", t.Name, t.State)
	if !t.TrialEnds.IsZero() {
		fmt.Fprintf(&b, " trial_ends=%s", t.TrialEnds.UTC().Format(time.RFC3339))
	}
	if !t.PurgeAt.IsZero() {
		fmt.Fprintf(&b, " purge_at=%s", t.PurgeAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(&b, " limits=%s labels=%s", describeLimits(t.Limits), describeLabels(t.Labels))
	return b.String()
}

func describeLimits(l keyspace.Limits) string {
	var parts []string
	for _, f := range []struct {
		n string
		v uint64
	}{{"max_bytes", l.MaxBytes}, {"max_keys", l.MaxKeys}, {"ops_per_sec", l.OpsPerSec}, {"burst", l.Burst},
		{"max_concurrent", l.MaxConcurrent}, {"max_watches", l.MaxWatches}, {"max_connections", l.MaxConnections}} {
		if f.v != 0 {
			parts = append(parts, fmt.Sprintf("%s:%d", f.n, f.v))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

func describeLabels(labels map[string]string) string {
	if len(labels) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+":"+labels[k])
	}
	return strings.Join(parts, ",")
}

func describeToken(t *command.TokenRecord) string {
	s := "id=" + t.ID
	if t.ReadOnly {
		s += " read-only"
	}
	if !t.ExpiresAt.IsZero() {
		s += " expires=" + t.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return s
}

// audited applies an operator's command and records what it changed.
func (a *applier) audited(c *command.Audited, res *Result) error {
	inner, err := c.Inner()
	if err != nil {
		return err
	}
	switch in := inner.(type) {
	case *command.CreateTenant:
		if err := a.createTenant(in, res); err != nil {
			return err
		}
		return a.audit(res.TenantID, c.At, c.Actor, "create", "", describeTenant(res.Tenant))
	case *command.CreateTrialTenant:
		if err := a.createTrialTenant(in, res); err != nil {
			return err
		}
		return a.audit(res.TenantID, c.At, c.Actor, "create", "", describeTenant(res.Tenant))
	case *command.UpdateTenant:
		before, err := a.tenant(in.ID)
		if err != nil {
			return err
		}
		before = copyTenant(before)
		if err := a.updateTenant(in, res); err != nil {
			return err
		}
		after := res.Tenant
		for _, ch := range []struct {
			kind     string
			old, new string
		}{
			{"rename", before.Name, after.Name},
			{"state", before.State.String(), after.State.String()},
			{"limits", describeLimits(before.Limits), describeLimits(after.Limits)},
			{"labels", describeLabels(before.Labels), describeLabels(after.Labels)},
		} {
			if ch.old != ch.new {
				if err := a.audit(after.ID, c.At, c.Actor, ch.kind, ch.old, ch.new); err != nil {
					return err
				}
			}
		}
		return nil
	case *command.PutToken:
		if err := a.putToken(in); err != nil {
			return err
		}
		if in.Token.TenantID == 0 {
			return nil // an operator token: no tenant's trail
		}
		return a.audit(in.Token.TenantID, c.At, c.Actor, "token-minted", "", describeToken(&in.Token))
	case *command.DeleteToken:
		rec := a.tokenRecord(in.ID)
		if err := a.deleteToken(in); err != nil {
			return err
		}
		if rec == nil || rec.TenantID == 0 {
			return nil
		}
		if a.entry(rec.TenantID) == nil {
			return nil // a token of a purged tenant: no trail left
		}
		return a.audit(rec.TenantID, c.At, c.Actor, "token-revoked", describeToken(rec), "")
	}
	return fmt.Errorf("%w: %T cannot be audited", command.ErrBadCommand, inner)
}

// auditNote records an event that changed nothing else.
func (a *applier) auditNote(c *command.AuditNote) error {
	t, err := a.tenant(c.ID)
	if err != nil {
		return err
	}
	if t.Name != c.Name {
		return fmt.Errorf("%w: id %d is named %q, not %q", ErrTenantNotFound, c.ID, t.Name, c.Name)
	}
	return a.audit(c.ID, c.At, c.Actor, c.Kind, "", c.After)
}

// importAudit records the events of an imported trail.
func (a *applier) importAudit(c *command.ImportAudit) error {
	t, err := a.tenant(c.ID)
	if err != nil {
		return err
	}
	if t.Name != c.Name {
		return fmt.Errorf("%w: id %d is named %q, not %q", ErrTenantNotFound, c.ID, t.Name, c.Name)
	}
	for _, e := range c.Events {
		if err := a.audit(c.ID, e.At, e.Actor, "imported:"+e.Kind, e.Before, e.After); err != nil {
			return err
		}
	}
	if c.Source != "" {
		return a.audit(c.ID, c.At, c.Actor, "import", "", c.Source)
	}
	return nil
}

// auditPrune drops up to c.Max of tenant c.ID's oldest events older than
// c.Before. Dropping none is not an error.
func (a *applier) auditPrune(c *command.AuditPrune) error {
	if _, err := a.tenant(c.ID); err != nil {
		return err
	}
	m, err := a.meta(c.ID)
	if err != nil {
		return err
	}
	st, err := readAuditState(m)
	if err != nil {
		return fatal("%w", err)
	}
	// Read first: the events to drop, and the Prev of the first kept one.
	var drop []uint64
	base := st.Base
	start, end := keyspace.AuditEventSpan(c.ID, st.First)
	var decodeErr error
	err = m.Scan(start, end, func(_, v []byte) bool {
		var ev storedEvent
		if decodeErr = command.Unmarshal(v, &ev); decodeErr != nil {
			return false
		}
		if ev.At >= c.Before || len(drop) == int(c.Max) {
			return false
		}
		drop = append(drop, ev.Seq)
		h := sha256.Sum256(v)
		base = h[:]
		return true
	})
	if err != nil {
		return fatal("tenant %d: read the audit trail: %w", c.ID, err)
	}
	if decodeErr != nil {
		// A stored event that does not decode: refuse, the same on every
		// replica that holds the same store; VerifyAudit names it.
		return fmt.Errorf("%w: tenant %d's audit trail: %v", keyspace.ErrInvalidRecord, c.ID, decodeErr)
	}
	if len(drop) == 0 {
		return nil
	}
	for _, seq := range drop {
		if err := deleteRecord(m, keyspace.AuditEventKey(c.ID, seq)); err != nil {
			return err
		}
	}
	st.First, st.Base = drop[len(drop)-1]+1, base
	sb, err := command.Marshal(st)
	if err != nil {
		return fatal("encode an audit state: %w", err)
	}
	return setRecord(m, keyspace.AuditStateKey(c.ID), sb)
}

// AuditTrail returns up to limit events of tenant id's trail with a time
// at or after since, oldest first, starting after seq after. It reads one
// snapshot of the store.
func (f *Machine) AuditTrail(id keyspace.TenantID, since time.Time, after uint64, limit int) ([]AuditEvent, error) {
	if err := f.checkReadable(); err != nil {
		return nil, err
	}
	sn := f.store.NewSnapshot()
	defer sn.Close()
	m, err := sn.TenantMeta(id)
	if err != nil {
		return nil, err
	}
	var out []AuditEvent
	var decodeErr error
	start, end := keyspace.AuditEventSpan(id, after+1)
	err = m.Scan(start, end, func(_, v []byte) bool {
		var ev storedEvent
		if decodeErr = command.Unmarshal(v, &ev); decodeErr != nil {
			return false
		}
		if !since.IsZero() && ev.At < since.UnixNano() {
			return true
		}
		h := sha256.Sum256(v)
		out = append(out, AuditEvent{Seq: ev.Seq, At: time.Unix(0, ev.At), Actor: ev.Actor, Kind: ev.Kind,
			Before: ev.Before, After: ev.After, Prev: bytes.Clone(ev.Prev), Hash: h[:]})
		return limit <= 0 || len(out) < limit
	})
	if err == nil && decodeErr != nil {
		err = fmt.Errorf("%w: tenant %d's audit trail: %v (tenant audit --verify names the event)", keyspace.ErrInvalidRecord, id, decodeErr)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AuditVerdict is what VerifyAudit found.
type AuditVerdict struct {
	// Events is the number of events checked.
	Events uint64
	// First and Last are the kept trail's extent (Last < First: empty).
	First, Last uint64
	// OK is set when the chain is whole. Otherwise BadSeq is the first
	// event that does not verify (0: the trail's state record) and Reason
	// says why.
	OK     bool
	BadSeq uint64
	Reason string
}

// VerifyAudit checks tenant id's trail as this node stores it: every kept
// event is there, in order, decodes, and names the hash of its
// predecessor's stored bytes (the first one the hash the trail's state
// keeps), and the state's last hash is the last event's.
func (f *Machine) VerifyAudit(id keyspace.TenantID) (*AuditVerdict, error) {
	if err := f.checkReadable(); err != nil {
		return nil, err
	}
	sn := f.store.NewSnapshot()
	defer sn.Close()
	m, err := sn.TenantMeta(id)
	if err != nil {
		return nil, err
	}
	v := &AuditVerdict{}
	st, err := readAuditState(m)
	if err != nil {
		v.Reason = err.Error()
		return v, nil
	}
	v.First, v.Last = st.First, st.Next-1
	prev, want := st.Base, st.First
	bad := func(seq uint64, format string, args ...any) bool {
		v.BadSeq, v.Reason = seq, fmt.Sprintf(format, args...)
		return false
	}
	start, end := keyspace.AuditEventSpan(id, 0)
	err = m.Scan(start, end, func(k, b []byte) bool {
		seq, ok := keyspace.AuditSeqOf(k)
		if !ok {
			return bad(want, "a key that is not an event's: %q", k)
		}
		if seq != want {
			if seq < want {
				return bad(seq, "event %d is before the trail's first kept event %d", seq, st.First)
			}
			return bad(want, "event %d is missing (the next stored is %d)", want, seq)
		}
		var ev storedEvent
		if err := command.Unmarshal(b, &ev); err != nil {
			return bad(seq, "event %d does not decode: %v", seq, err)
		}
		if ev.Seq != seq {
			return bad(seq, "event %d is stored as event %d", seq, ev.Seq)
		}
		if !bytes.Equal(ev.Prev, prev) {
			if seq == st.First {
				return bad(seq, "event %d does not follow the trail's start: its predecessor's hash is not the one the trail kept", seq)
			}
			return bad(seq-1, "event %d was changed: its stored bytes do not hash to what event %d recorded", seq-1, seq)
		}
		h := sha256.Sum256(b)
		prev, want = h[:], want+1
		v.Events++
		return true
	})
	if err != nil {
		return nil, err
	}
	if v.Reason != "" {
		return v, nil
	}
	switch {
	case want != st.Next:
		v.BadSeq, v.Reason = want, fmt.Sprintf("events %d to %d are missing", want, st.Next-1)
	case !bytes.Equal(prev, st.Last):
		v.BadSeq, v.Reason = st.Next-1, fmt.Sprintf("event %d was changed: its stored bytes do not hash to what the trail recorded", st.Next-1)
	default:
		v.OK = true
	}
	return v, nil
}

// AuditTenants returns the tenants whose trail holds events older than
// before, up to max of them, for the leader's AuditPrune proposals. It
// reads each tenant's first kept event: O(tenants), so the leader calls it
// rarely (server/audit.go).
func (f *Machine) AuditTenants(before time.Time, max int) []keyspace.TenantID {
	if f.checkReadable() != nil {
		return nil
	}
	f.cat.mu.RLock()
	ids := make([]keyspace.TenantID, 0, len(f.cat.tenants))
	for id := range f.cat.tenants {
		ids = append(ids, id)
	}
	f.cat.mu.RUnlock()
	slices.Sort(ids)
	sn := f.store.NewSnapshot()
	defer sn.Close()
	var out []keyspace.TenantID
	for _, id := range ids {
		m, err := sn.TenantMeta(id)
		if err != nil {
			continue
		}
		st, err := readAuditState(m)
		if err != nil || st.First >= st.Next {
			continue
		}
		b, err := m.Get(keyspace.AuditEventKey(id, st.First))
		if err != nil {
			continue
		}
		var ev storedEvent
		if command.Unmarshal(b, &ev) == nil && ev.At < before.UnixNano() {
			out = append(out, id)
			if len(out) == max {
				break
			}
		}
	}
	return out
}
