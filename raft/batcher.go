package raft

import (
	"context"
	"fmt"
	"time"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/raft/fsm"

	"github.com/tenantkv/tenantkv/keyspace"
)

// # Proposal batching
//
// Tenant data commands (TenantWrite, TxnCommit, CompareAndSwap) do not go to
// raft one log entry each. They queue for one goroutine, the batcher, which
// hands raft whatever has queued as a single batch entry, then the next
// once that one is applied (maxInFlightEntries). It adds no timer: a
// proposal alone goes at once, as an entry of its own; under load the next
// proposals queue while an entry is in raft, so batches grow by themselves
// with the load. Each log entry costs raft an encoding, a log store append, a replication
// record and an apply dispatch on every node; one batch entry of 100 writes
// pays those once.
//
// A batch entry is the envelope with typeBatch and, as body,
//
//	uvarint(n) n × (uvarint(len) command entry)
//
// Each command in it is applied as if it were an entry of its own, in
// order, at the batch's log index: refusing one refuses that one only. A
// batch whose framing is bad is refused whole, deterministically. Batches
// do not nest.

const (
	// proposalQueue is how many proposals may wait for the batcher.
	proposalQueue = 4096
	// maxInFlightEntries is how many entries of the batcher may be in raft
	// at once, appended but not yet applied. Every entry costs each node
	// an fdatasync of its log, and hashicorp/raft syncs the leader's log
	// before it replicates, so entries in flight side by side mostly queue
	// for the same disks. With one in flight, the load that arrives
	// meanwhile joins the next entry instead. Measured with the bolt log
	// (two fdatasyncs per append) on 3 nodes (W, 16 clients): 3,171
	// writes/s unbounded (2.9 per entry), 3,749 with 2 in flight (5.2),
	// 4,046 with 1 (8.0); 128 clients: 13,447, 14,423, 15,790. With the
	// Pebble log (one fdatasync), medians of 3 alternated runs of
	// etcdbench W on 3 nodes, 5 s each, on a busy 2-core machine: 1 in
	// flight 535, 2,611 and 6,031 writes/s at 1, 16 and 128 clients; 2 in
	// flight 552, 2,352 and 6,134: no gain, so one it stays.
	maxInFlightEntries = 1
)

// proposal is one command waiting for the batcher.
type proposal struct {
	ctx  context.Context // its proposer's: one that ended is not sent
	data []byte
	done chan proposalOutcome // buffered: the batcher never blocks on it
	// tenant and cost place it in the fair queue (fairqueue.go).
	tenant keyspace.TenantID
	cost   int
}

type proposalOutcome struct {
	res *fsm.Result
	err error
}

// proposeBatched queues an encoded command for the batcher and waits for
// its outcome, ctx or shutdown, with Propose's error contract. A tenant
// may have at most maxTenantProposals proposals queued or in flight; more
// wait here, behind their own tenant's (fairqueue.go).
func (n *Node) proposeBatched(ctx context.Context, cmd command.Command, data []byte) (*fsm.Result, error) {
	tenant, cost := proposalCost(cmd, data)
	if err := n.slots.acquire(ctx, tenant, n.closing); err != nil {
		return nil, err // never queued
	}
	defer n.slots.release(tenant)
	p := &proposal{ctx: ctx, data: data, done: make(chan proposalOutcome, 1), tenant: tenant, cost: cost}
	select {
	case n.proposals <- p:
	case <-ctx.Done():
		return nil, fmt.Errorf("raft: propose: %w", ctx.Err()) // never queued
	case <-n.closing:
		return nil, ErrShutdown
	}
	select {
	case o := <-p.done:
		return o.res, o.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrCommitUnknown, ctx.Err())
	case <-n.closing:
		return nil, fmt.Errorf("%w: %v", ErrCommitUnknown, ErrShutdown)
	}
}

// runBatcher is the batcher goroutine. It moves proposals from the channel
// into the fair queue and hands raft one entry at a time, as the queue
// composes it.
func (n *Node) runBatcher() {
	defer n.wg.Done()
	q := newFairQueue()
	var datas [][]byte
	var heavyStart time.Time // when the heavy entry in flight was sent
	var wait *time.Timer
	for {
		if q.empty() {
			select {
			case p := <-n.proposals:
				q.push(p)
			case <-n.closing:
				n.drainProposals()
				return
			}
		}
		// Wait for a free slot before composing the entry: what queues
		// meanwhile joins it.
		select {
		case n.inflight <- struct{}{}:
		case <-n.closing:
			q.fail(ErrShutdown)
			n.drainProposals()
			return
		}
		now := time.Now()
		if !heavyStart.IsZero() {
			// The slot is free: the heavy entry has been applied (one
			// entry in flight, maxInFlightEntries).
			q.heavyDone(heavyStart, now)
			heavyStart = time.Time{}
		}
		q.fill(n.proposals)
		batch, heavy, pause := q.next(now)
		if len(batch) == 0 {
			<-n.inflight
			if pause <= 0 {
				continue // every candidate's proposer had given up
			}
			// Only heavy proposals wait, and must pause: wait for the
			// pause to end or for a new proposal.
			if wait == nil {
				wait = time.NewTimer(pause)
			} else {
				wait.Reset(pause)
			}
			select {
			case p := <-n.proposals:
				q.push(p)
			case <-wait.C:
			case <-n.closing:
				q.fail(ErrShutdown)
				n.drainProposals()
				return
			}
			wait.Stop()
			continue
		}
		if heavy {
			heavyStart = now
		}
		if len(batch) == 1 {
			n.send(batch, batch[0].data)
			continue
		}
		datas = datas[:0]
		for _, p := range batch {
			datas = append(datas, p.data)
		}
		n.send(batch, command.EncodeBatch(datas))
	}
}

// send hands one entry to raft and has a goroutine deliver its outcome.
// raft.Apply blocks while the leader loop is busy: that is when the next
// batch fills.
func (n *Node) send(ps []*proposal, data []byte) {
	fut := n.raft.Apply(data, 0)
	// raft may never answer a future whose entry it committed but had not
	// applied when it shut down: the wait for it is not Shutdown's to wait
	// for, but what answers the proposers is (it may read the store).
	errc := make(chan error, 1)
	go func() { errc <- fut.Error() }()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		var err error
		select {
		case err = <-errc:
		case <-n.closing:
			err := fmt.Errorf("%w: %v", ErrCommitUnknown, ErrShutdown)
			for _, p := range ps {
				p.done <- proposalOutcome{err: err}
			}
			return
		}
		<-n.inflight
		if err != nil {
			err = n.mapRaftError(err)
			for _, p := range ps {
				p.done <- proposalOutcome{err: err}
			}
			return
		}
		deliver(ps, fut.Response())
	}()
}

// deliver hands each proposal of an applied entry its own result.
func deliver(ps []*proposal, resp any) {
	one := func(p *proposal, r *fsm.Result) {
		switch {
		case r == nil:
			p.done <- proposalOutcome{err: fmt.Errorf("%w: no result for the command", ErrCommitUnknown)}
		case r.Err != nil:
			p.done <- proposalOutcome{err: resultError(r)}
		case r.Replayed:
			p.done <- proposalOutcome{err: fmt.Errorf("%w: entry replayed", ErrCommitUnknown)}
		default:
			p.done <- proposalOutcome{res: r}
		}
	}
	switch r := resp.(type) {
	case *fsm.BatchResult:
		if len(r.Results) != len(ps) {
			for _, p := range ps {
				one(p, nil)
			}
			return
		}
		for i, p := range ps {
			one(p, r.Results[i])
		}
	case *fsm.Result:
		// A single command's entry; or a whole entry refused or failed
		// (bad framing, storage failure), which every command shares.
		for _, p := range ps {
			if len(ps) > 1 && r.Err == nil {
				one(p, nil)
				continue
			}
			one(p, r)
		}
	default:
		for _, p := range ps {
			p.done <- proposalOutcome{err: fmt.Errorf("%w: unexpected FSM response %T", ErrCommitUnknown, resp)}
		}
	}
}

// drainProposals fails what is still queued at shutdown: none of it reached
// raft.
func (n *Node) drainProposals() {
	for {
		select {
		case p := <-n.proposals:
			p.done <- proposalOutcome{err: ErrShutdown}
		default:
			return
		}
	}
}
