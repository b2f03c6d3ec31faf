package raft

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tenantkv/tenantkv/raft/command"

	"github.com/tenantkv/tenantkv/keyspace"
)

// # A fair share of the apply loop
//
// Every tenant's commands are applied by one loop, one batch entry at a
// time, so a command that takes long to apply delays every command queued
// behind it, whoever sent it. The batcher therefore does not hand raft the
// proposals in arrival order. It keeps one FIFO queue per tenant and
// composes each entry from them:
//
//   - A heavy proposal (cost over heavyCost: about 1,000 mutations, or
//     64 KiB) goes in an entry of its own, and heavy entries alternate
//     with light ones: while light proposals wait, at most one heavy entry
//     is applied between two light ones. A light proposal therefore waits
//     for at most one heavy command, however many are queued.
//   - While light proposals are being sent, a heavy entry that took d to
//     apply is followed by at least 4d of light entries only: heavy work
//     takes at most a fifth of the loop's time while others have work
//     (and all of it when nobody else does), so the apply loop, and the
//     CPU it runs on (every replica applies every entry), is not saturated
//     by one tenant's expensive writes.
//   - Heavy entries take tenants in turn (round robin), so one tenant's
//     stream of heavy writes waits behind its own, not behind another's.
//   - A light entry takes up to its share from each tenant in turn (256
//     commands or 1 MiB in all), so a tenant with a thousand small
//     proposals queued cannot fill the entry ahead of one with two.
//   - A tenant may have at most maxTenantProposals proposals queued or in
//     flight (tenantSlots); further proposals wait in their proposer's
//     goroutine, so one tenant cannot take the whole proposal queue.
//
// A tenant's own proposals keep their order. The cost of a proposal is its
// encoded size plus TxnOverhead per mutation and per read range: what its
// apply costs, roughly, in bytes.

const (
	// heavyCost is the cost above which a proposal goes in an entry of
	// its own: 1,024 mutations' overhead.
	heavyCost = 1024 * command.TxnOverhead
	// maxTenantProposals bounds one tenant's proposals queued for the
	// batcher or in flight.
	maxTenantProposals = 512
	// heavyPause is how many times its own apply time a heavy entry is
	// followed by light entries only, while light proposals are sent:
	// heavy work takes at most 1/(1+heavyPause) of the apply loop then.
	// Every replica applies every entry, and replicas (and, later, raft
	// groups) share a machine's cores: measured with three in-process
	// nodes on two cores, 2 left the victim's p50 at 13-18 ms and 4 at
	// 7-8 ms (alone: 2 ms).
	heavyPause = 4
)

// proposalCost returns the tenant a batchable command writes and its cost.
func proposalCost(cmd command.Command, data []byte) (keyspace.TenantID, int) {
	switch c := cmd.(type) {
	case *command.TenantWrite:
		return c.TenantID, len(data) + command.TxnOverhead*len(c.Ops)
	case *command.TxnCommit:
		return c.TenantID, len(data) + command.TxnOverhead*(len(c.Ops)+len(c.Reads))
	case *command.CompareAndSwap:
		return c.TenantID, len(data) + command.TxnOverhead
	}
	return 0, len(data)
}

// fairQueue holds the proposals the batcher has taken from the channel, one
// FIFO per tenant. It is used by the batcher goroutine only.
type fairQueue struct {
	tenants map[keyspace.TenantID]*tenantQueue
	// ring lists the tenants with queued proposals, in the order they
	// became active; light and heavy are the round-robin positions.
	ring      []keyspace.TenantID
	light     int
	heavy     int
	held      int  // proposals queued, at most proposalQueue
	heavyTurn bool // the next entry may be heavy
	// After a heavy entry that took d to apply, while light proposals
	// are being sent, the next heavy one waits until pauseUntil (its end
	// plus heavyPause×d).
	pauseUntil      time.Time
	lightSinceHeavy bool
}

type tenantQueue struct {
	ps   []*proposal
	head int
}

func newFairQueue() *fairQueue {
	return &fairQueue{tenants: make(map[keyspace.TenantID]*tenantQueue)}
}

func (q *fairQueue) empty() bool { return q.held == 0 }

func (q *fairQueue) push(p *proposal) {
	tq := q.tenants[p.tenant]
	if tq == nil {
		tq = &tenantQueue{}
		q.tenants[p.tenant] = tq
		q.ring = append(q.ring, p.tenant)
	}
	tq.ps = append(tq.ps, p)
	q.held++
}

// fill moves what waits in ch into the queue, without blocking, while the
// queue holds fewer than proposalQueue proposals.
func (q *fairQueue) fill(ch <-chan *proposal) {
	for q.held < proposalQueue {
		select {
		case p := <-ch:
			q.push(p)
		default:
			return
		}
	}
}

// peek returns tenant t's first proposal whose proposer still waits,
// answering and dropping those that gave up; nil if none.
func (q *fairQueue) peek(t keyspace.TenantID) *proposal {
	tq := q.tenants[t]
	for tq != nil && tq.head < len(tq.ps) {
		p := tq.ps[tq.head]
		if err := p.ctx.Err(); err != nil {
			// Its proposer has given up (and reported the commit
			// unknown): do not append it after all.
			p.done <- proposalOutcome{err: fmt.Errorf("raft: propose: %w", err)}
			q.pop(t)
			continue
		}
		return p
	}
	return nil
}

func (q *fairQueue) pop(t keyspace.TenantID) {
	tq := q.tenants[t]
	tq.ps[tq.head] = nil
	tq.head++
	q.held--
	switch {
	case tq.head == len(tq.ps):
		tq.ps, tq.head = tq.ps[:0], 0
	case tq.head >= 64 && tq.head*2 >= len(tq.ps): // reclaim the consumed front
		n := copy(tq.ps, tq.ps[tq.head:])
		clear(tq.ps[n:])
		tq.ps, tq.head = tq.ps[:n], 0
	}
}

// compact drops the tenants whose queues are empty from the ring.
func (q *fairQueue) compact() {
	out := q.ring[:0]
	for i, t := range q.ring {
		if tq := q.tenants[t]; tq.head < len(tq.ps) {
			out = append(out, t)
			continue
		}
		delete(q.tenants, t)
		if i < q.light {
			q.light--
		}
		if i < q.heavy {
			q.heavy--
		}
	}
	clear(q.ring[len(out):])
	q.ring = out
	if len(q.ring) == 0 {
		q.light, q.heavy = 0, 0
		return
	}
	q.light %= len(q.ring)
	q.heavy %= len(q.ring)
}

// heavyDone records that a heavy entry sent at start has been applied,
// at now.
func (q *fairQueue) heavyDone(start, now time.Time) {
	q.pauseUntil = now.Add(heavyPause * now.Sub(start))
	q.lightSinceHeavy = false
}

// next composes the next entry at now: a light one or a single heavy
// proposal, alternating while both kinds wait. If it returns no entry
// while proposals are queued, wait is how long the heavy ones must wait
// (zero if every queued proposer had given up).
func (q *fairQueue) next(now time.Time) (batch []*proposal, heavy bool, wait time.Duration) {
	defer q.compact()
	paused := q.lightSinceHeavy && now.Before(q.pauseUntil)
	if q.heavyTurn && !paused {
		q.heavyTurn = false
		if p := q.nextHeavy(); p != nil {
			return []*proposal{p}, true, 0
		}
	}
	if batch := q.nextLight(); len(batch) > 0 {
		q.heavyTurn = true
		q.lightSinceHeavy = true
		return batch, false, 0
	}
	if paused {
		return nil, false, q.pauseUntil.Sub(now)
	}
	if p := q.nextHeavy(); p != nil {
		return []*proposal{p}, true, 0
	}
	return nil, false, 0
}

// nextHeavy takes the heavy proposal at the head of the next tenant in
// turn that has one.
func (q *fairQueue) nextHeavy() *proposal {
	for i := range len(q.ring) {
		at := (q.heavy + i) % len(q.ring)
		t := q.ring[at]
		if p := q.peek(t); p != nil && p.cost > heavyCost {
			q.pop(t)
			q.heavy = (at + 1) % len(q.ring)
			return p
		}
	}
	return nil
}

// nextLight takes light proposals from the tenants in turn, each up to its
// share of the entry, then whatever still fits.
func (q *fairQueue) nextLight() []*proposal {
	var batch []*proposal
	size := 0
	n := len(q.ring)
	if n == 0 {
		return nil
	}
	share := max(1, command.MaxBatchCommands/n)
	start := q.light
	for pass := 0; pass < 2; pass++ {
		progress := false
		for i := range n {
			t := q.ring[(start+i)%n]
			for taken := 0; pass == 1 || taken < share; taken++ {
				if len(batch) == command.MaxBatchCommands {
					q.light = (start + 1) % n
					return batch
				}
				p := q.peek(t)
				if p == nil || p.cost > heavyCost || (len(batch) > 0 && size+len(p.data) > command.MaxBatchBytes) {
					break
				}
				q.pop(t)
				batch = append(batch, p)
				size += len(p.data)
				progress = true
			}
		}
		if !progress {
			break
		}
	}
	q.light = (start + 1) % n
	return batch
}

// fail answers every queued proposal with err.
func (q *fairQueue) fail(err error) {
	for _, t := range q.ring {
		tq := q.tenants[t]
		for _, p := range tq.ps[tq.head:] {
			p.done <- proposalOutcome{err: err}
		}
	}
	*q = *newFairQueue()
}

// tenantSlots bounds each tenant's proposals queued for the batcher or in
// flight to maxTenantProposals. The zero value is ready.
type tenantSlots struct {
	mu sync.Mutex
	m  map[keyspace.TenantID]*slotCount
}

type slotCount struct {
	n    int
	wait chan struct{} // closed when a slot frees; nil if nobody waits
}

// acquire takes a slot of tenant t, waiting for one while ctx and closing
// allow.
func (s *tenantSlots) acquire(ctx context.Context, t keyspace.TenantID, closing <-chan struct{}) error {
	for {
		s.mu.Lock()
		if s.m == nil {
			s.m = make(map[keyspace.TenantID]*slotCount)
		}
		c := s.m[t]
		if c == nil {
			c = &slotCount{}
			s.m[t] = c
		}
		if c.n < maxTenantProposals {
			c.n++
			s.mu.Unlock()
			return nil
		}
		if c.wait == nil {
			c.wait = make(chan struct{})
		}
		w := c.wait
		s.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return fmt.Errorf("raft: propose: %w", ctx.Err())
		case <-closing:
			return ErrShutdown
		}
	}
}

// release returns a slot of tenant t.
func (s *tenantSlots) release(t keyspace.TenantID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.m[t]
	c.n--
	if c.wait != nil {
		close(c.wait)
		c.wait = nil
	}
	if c.n == 0 {
		delete(s.m, t)
	}
}
