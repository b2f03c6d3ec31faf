package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
)

// POST /v1/tenants/{tenant}/txn: reads, conditions and mutations, applied
// atomically if every condition holds. It is the Go client's optimistic
// transaction, run by the server with the binary protocol's own requests:
// a read version (OpReadVersion), reads at it (OpGet and OpScan with
// ReadVersion), then one commit (OpCommit) whose read conflict ranges
// are everything the reads and conditions looked at, with the mutations
// if the conditions held and none otherwise (a commit without mutations
// validates the reads and writes nothing). A conflict (a write to what was
// read after the read version) starts over, at most txnAttempts times.
// Each request is admitted and counted as any other: a transaction of n
// reads and conditions costs n+2 operations of the tenant's rate limit.

// Bounds of one transaction (the mutations' are the commit's:
// command.MaxMutations and command.MaxTxnBytes).
const (
	// maxTxnReads bounds a transaction's reads and conditions together.
	maxTxnReads = 128
	// maxTxnReadBytes bounds the keys and values its reads return.
	maxTxnReadBytes = maxScanBytes
	// txnAttempts bounds how often a conflicting transaction starts over.
	txnAttempts = 3
)

// jsonBytes is a byte string of a JSON request: Encoding "" or "utf-8"
// takes the string's bytes, "base64" decodes it.
type txnRequest struct {
	Reads      []txnRead      `json:"reads"`
	Conditions []txnCondition `json:"conditions"`
	Mutations  []txnMutation  `json:"mutations"`
}

// txnRead is a get (key) or a range (prefix, or start and end).
type txnRead struct {
	Key      *string `json:"key"`
	Prefix   *string `json:"prefix"`
	Start    *string `json:"start"`
	End      *string `json:"end"`
	Limit    int     `json:"limit"`
	Reverse  bool    `json:"reverse"`
	Encoding string  `json:"encoding"`
}

// txnCondition holds when the key's value equals Value, or its version
// equals Version, or (Absent) it has none.
type txnCondition struct {
	Key      string  `json:"key"`
	Value    *string `json:"value"`
	Version  *uint64 `json:"version"`
	Absent   bool    `json:"absent"`
	Encoding string  `json:"encoding"`
}

// txnMutation is set (key, value), delete (key), delete_range (prefix, or
// start and end) or add (key, delta: a signed 64-bit integer added to the
// key's value read as one, little-endian, absent as 0).
type txnMutation struct {
	Op       string  `json:"op"`
	Key      string  `json:"key"`
	Value    string  `json:"value"`
	Prefix   *string `json:"prefix"`
	Start    string  `json:"start"`
	End      string  `json:"end"`
	Delta    *int64  `json:"delta"`
	Encoding string  `json:"encoding"`
}

// txnPlan is a decoded transaction.
type txnPlan struct {
	reads []planRead
	conds []planCond
	muts  []wire.Mutation
}

type planRead struct {
	get        bool
	start, end []byte
	limit      int
	reverse    bool
}

type planCond struct {
	key     []byte
	value   []byte
	version *uint64
	absent  bool
}

// decodeTxn parses and checks a transaction body. Its cost is linear in
// the body, which the caller bounded.
func decodeTxn(body []byte) (*txnPlan, error) {
	var tr txnRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tr); err != nil {
		return nil, fmt.Errorf("%w: transaction body: %v", ErrBadRequest, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: transaction body: more than one JSON value", ErrBadRequest)
	}
	if n := len(tr.Reads) + len(tr.Conditions); n > maxTxnReads {
		return nil, fmt.Errorf("%w: %d reads and conditions, limit %d", command.ErrTxTooLarge, n, maxTxnReads)
	}
	if len(tr.Mutations) > command.MaxMutations {
		return nil, fmt.Errorf("%w: %d mutations, limit %d", command.ErrTxTooLarge, len(tr.Mutations), command.MaxMutations)
	}
	plan := &txnPlan{}
	for i, rd := range tr.Reads {
		pr, err := decodeRead(&rd)
		if err != nil {
			return nil, fmt.Errorf("read %d: %w", i, err)
		}
		plan.reads = append(plan.reads, pr)
	}
	for i, c := range tr.Conditions {
		pc, err := decodeCond(&c)
		if err != nil {
			return nil, fmt.Errorf("condition %d: %w", i, err)
		}
		plan.conds = append(plan.conds, pc)
	}
	for i, m := range tr.Mutations {
		wm, err := decodeMutation(&m)
		if err != nil {
			return nil, fmt.Errorf("mutation %d: %w", i, err)
		}
		plan.muts = append(plan.muts, wm)
	}
	return plan, nil
}

func decodeRead(rd *txnRead) (planRead, error) {
	var pr planRead
	dec := func(s *string) ([]byte, error) {
		if s == nil {
			return nil, nil
		}
		return decodeBytes(*s, rd.Encoding)
	}
	var err error
	switch {
	case rd.Key != nil:
		if rd.Prefix != nil || rd.Start != nil || rd.End != nil {
			return pr, fmt.Errorf("%w: a read names a key or a range, not both", ErrBadRequest)
		}
		pr.get = true
		if pr.start, err = dec(rd.Key); err != nil {
			return pr, err
		}
		return pr, keyspace.CheckKey(pr.start)
	case rd.Prefix != nil:
		if rd.Start != nil || rd.End != nil {
			return pr, fmt.Errorf("%w: prefix with start or end", ErrBadRequest)
		}
		if pr.start, err = dec(rd.Prefix); err != nil {
			return pr, err
		}
		pr.end = prefixEnd(pr.start)
	default:
		if pr.start, err = dec(rd.Start); err != nil {
			return pr, err
		}
		if pr.end, err = dec(rd.End); err != nil {
			return pr, err
		}
	}
	if rd.Limit < 0 || rd.Limit > maxScanPage {
		return pr, fmt.Errorf("%w: limit %d, at most %d", ErrBadRequest, rd.Limit, maxScanPage)
	}
	pr.limit, pr.reverse = rd.Limit, rd.Reverse
	if pr.limit == 0 {
		pr.limit = defaultKeysLimit
	}
	return pr, keyspace.CheckRange(pr.start, pr.end)
}

func decodeCond(c *txnCondition) (planCond, error) {
	var pc planCond
	var err error
	if pc.key, err = decodeBytes(c.Key, c.Encoding); err != nil {
		return pc, err
	}
	if err := keyspace.CheckKey(pc.key); err != nil {
		return pc, err
	}
	n := 0
	if c.Value != nil {
		n++
		if pc.value, err = decodeBytes(*c.Value, c.Encoding); err != nil {
			return pc, err
		}
	}
	if c.Version != nil {
		n++
		pc.version = c.Version
	}
	if c.Absent {
		n++
		pc.absent = true
	}
	if n != 1 {
		return pc, fmt.Errorf("%w: a condition compares one of value, version or absent", ErrBadRequest)
	}
	return pc, nil
}

func decodeMutation(m *txnMutation) (wire.Mutation, error) {
	var wm wire.Mutation
	var err error
	switch m.Op {
	case "set", "delete", "add":
		if wm.Key, err = decodeBytes(m.Key, m.Encoding); err != nil {
			return wm, err
		}
	}
	switch m.Op {
	case "set":
		wm.Kind = wire.MutSet
		if wm.Value, err = decodeBytes(m.Value, m.Encoding); err != nil {
			return wm, err
		}
	case "delete":
		wm.Kind = wire.MutDelete
	case "add":
		if m.Delta == nil {
			return wm, fmt.Errorf("%w: add needs a delta", ErrBadRequest)
		}
		wm.Kind = wire.MutAdd
		wm.Value = binary.LittleEndian.AppendUint64(nil, uint64(*m.Delta))
	case "delete_range":
		wm.Kind = wire.MutDeleteRange
		if m.Prefix != nil {
			if m.Start != "" || m.End != "" {
				return wm, fmt.Errorf("%w: prefix with start or end", ErrBadRequest)
			}
			if wm.Key, err = decodeBytes(*m.Prefix, m.Encoding); err != nil {
				return wm, err
			}
			wm.End = prefixEnd(wm.Key)
			break
		}
		if wm.Key, err = decodeBytes(m.Start, m.Encoding); err != nil {
			return wm, err
		}
		if wm.End, err = decodeBytes(m.End, m.Encoding); err != nil {
			return wm, err
		}
	default:
		return wm, fmt.Errorf("%w: op %q (want set, delete, delete_range or add)", ErrBadRequest, m.Op)
	}
	// The same checks as the commit's, early, to name the mutation.
	if _, err := txnOp(&wm); err != nil {
		return wm, err
	}
	return wm, nil
}

// txnReadResult is one read's answer: a get's value (Found) or a range's
// pairs.
type txnReadResult struct {
	Found         *bool    `json:"found,omitempty"`
	Value         *string  `json:"value,omitempty"`
	ValueEncoding string   `json:"value_encoding,omitempty"`
	Version       uint64   `json:"version,omitempty"`
	KVs           []jsonKV `json:"kvs,omitempty"`
	More          *bool    `json:"more,omitempty"`
}

// txnAnswer is the answer: Applied says whether the conditions held and
// the mutations took effect, at Version. Failed lists the conditions that
// did not hold (409).
type txnAnswer struct {
	Applied bool            `json:"applied"`
	Version uint64          `json:"version"`
	Reads   []txnReadResult `json:"reads"`
	Failed  []int           `json:"failed,omitempty"`
	Code    string          `json:"code,omitempty"`
	Message string          `json:"message,omitempty"`
}

func (a *httpAPI) txn(ctx context.Context, w http.ResponseWriter, ar *apiRequest) error {
	plan, err := decodeTxn(ar.body)
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		ans, err := a.txnAttempt(ctx, ar, plan)
		var we *wireError
		if errors.As(err, &we) && we.resp.Code == wire.CodeConflict && attempt < txnAttempts {
			continue
		}
		if err != nil {
			return err
		}
		if !ans.Applied {
			ans.Code, ans.Message = codeConditionFailed, fmt.Sprintf("%d of %d conditions did not hold", len(ans.Failed), len(plan.conds))
			writeJSON(w, http.StatusConflict, ans)
			return nil
		}
		writeJSON(w, http.StatusOK, ans)
		return nil
	}
}

// txnAttempt runs the transaction once.
func (a *httpAPI) txnAttempt(ctx context.Context, ar *apiRequest, plan *txnPlan) (*txnAnswer, error) {
	tenant := ar.rt.tenant
	rv, err := a.answer(ctx, ar, &wire.Request{Op: wire.OpReadVersion, Tenant: tenant})
	if err != nil {
		return nil, err
	}
	at := func(req *wire.Request) *wire.Request {
		req.Tenant, req.Stale, req.ReadVersion, req.TenantID = tenant, true, rv.DataVersion, rv.TenantID
		return req
	}
	ans := &txnAnswer{Reads: make([]txnReadResult, 0, len(plan.reads))}
	ranges := make([]wire.KeyRange, 0, len(plan.reads)+len(plan.conds))
	read := 0
	for _, pr := range plan.reads {
		var res txnReadResult
		if pr.get {
			resp, err := a.answer(ctx, ar, at(&wire.Request{Op: wire.OpGet, Key: pr.start}))
			found, err := foundOrNot(err)
			if err != nil {
				return nil, err
			}
			res.Found = &found
			if found {
				v, enc := encodeBytes(resp.Value)
				res.Value, res.ValueEncoding, res.Version = &v, enc, resp.DataVersion
				read += len(resp.Value)
			}
			ranges = append(ranges, wire.KeyRange{Start: pr.start, End: keyAfter(pr.start)})
		} else {
			resp, err := a.answer(ctx, ar, at(&wire.Request{Op: wire.OpScan, Key: pr.start, End: pr.end, Limit: pr.limit, Reverse: pr.reverse}))
			if err != nil {
				return nil, err
			}
			res.KVs = make([]jsonKV, len(resp.KVs))
			for i := range resp.KVs {
				res.KVs[i] = kvJSON(&resp.KVs[i])
				read += len(resp.KVs[i].Key) + len(resp.KVs[i].Value)
			}
			more := resp.More
			res.More = &more
			ranges = append(ranges, wire.KeyRange{Start: pr.start, End: pr.end})
		}
		if read > maxTxnReadBytes {
			return nil, fmt.Errorf("%w: the reads returned over %d bytes", command.ErrTxTooLarge, maxTxnReadBytes)
		}
		ans.Reads = append(ans.Reads, res)
	}
	for i, c := range plan.conds {
		resp, err := a.answer(ctx, ar, at(&wire.Request{Op: wire.OpGet, Key: c.key}))
		found, err := foundOrNot(err)
		if err != nil {
			return nil, err
		}
		var holds bool
		switch {
		case c.absent:
			holds = !found
		case c.version != nil:
			holds = found && resp.DataVersion == *c.version
		default:
			holds = found && bytes.Equal(resp.Value, c.value)
		}
		if !holds {
			ans.Failed = append(ans.Failed, i)
		}
		ranges = append(ranges, wire.KeyRange{Start: c.key, End: keyAfter(c.key)})
	}
	commit := &wire.Request{Op: wire.OpCommit, Tenant: tenant, ReadVersion: rv.DataVersion, TenantID: rv.TenantID, Reads: ranges}
	ans.Applied = len(ans.Failed) == 0
	if ans.Applied && len(plan.muts) > 0 {
		commit.Muts = plan.muts
		commit.TxnID = make([]byte, 16)
		_, _ = rand.Read(commit.TxnID)
	}
	// Without mutations the commit validates the reads: nothing written
	// after the read version changed what they returned.
	resp, err := a.answer(ctx, ar, commit)
	if err != nil {
		return nil, err
	}
	ans.Version = resp.DataVersion
	return ans, nil
}

// foundOrNot turns a get's not-found answer into found false.
func foundOrNot(err error) (bool, error) {
	var we *wireError
	if errors.As(err, &we) && we.resp.Code == wire.CodeNotFound {
		return false, nil
	}
	return err == nil, err
}

// keyAfter is the first key after k: [k, keyAfter(k)) holds k alone.
func keyAfter(k []byte) []byte { return append(append(make([]byte, 0, len(k)+1), k...), 0) }
