package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/keyspace"
)

// GET /v1/tenants/{tenant}/watch?key=|prefix=|start=&end=&from=: the
// changes of a key or range as Server-Sent Events. The stream is a loop of
// the binary protocol's watch polls (OpWatch), each admitted, counted
// against the tenant's rate limit and concurrency, and holding one of the
// tenant's watches (watchHub.acquire) while it waits, as a Go client's
// watch does; the first poll runs before the stream's headers, so that a
// refusal (429 at the tenant's watch limit, 410 for a version no longer in
// the history, 403) is a plain HTTP answer.
//
// Every version is one event: `id:` is the version, `data:` a JSON object
// with the version and its changes. A client that reconnects with
// Last-Event-ID (what EventSource does) or from=V+1 resumes after version
// V: nothing is lost or repeated while the history reaches back there.
// Without either the stream starts after the tenant's current version.
// A comment line goes out at least every watchHeartbeat, so that proxies
// keep the stream; the stream ends when the client goes, the node closes
// or stops leading (the client reconnects, to the new leader through any
// node), or the token is revoked (an `event: error` with the JSON error
// body, then the end).

// streamSlot, in a poll's context, is the watch an HTTP stream holds for
// its whole life (watchHub.acquire): its polls take no other.
type streamSlot struct{ tenant keyspace.TenantID }

type streamSlotKey struct{}

// acquireWatch counts a watch of tenant t against its limit, as
// watchHub.acquire, unless ctx carries the slot of an HTTP stream of t,
// which its polls share.
func (s *Server) acquireWatch(ctx context.Context, t *keyspace.Tenant) (release func(), ok bool) {
	if held, _ := ctx.Value(streamSlotKey{}).(*streamSlot); held != nil && held.tenant == t.ID {
		return func() {}, true
	}
	return s.watches.acquire(t.ID, watchLimit(t))
}

// holdWatch takes the watch slot of a stream of tenant id for its life.
func (a *httpAPI) holdWatch(ctx context.Context, id keyspace.TenantID) (context.Context, func(), error) {
	t, err := a.s.node.FSM().TenantByID(id)
	if err != nil {
		return nil, nil, err
	}
	release, ok := a.s.watches.acquire(id, watchLimit(t))
	if !ok {
		a.s.usage.record(t.ID, opScan, outcomeThrottled, 0, 0, 0)
		return nil, nil, &wireError{resp: &wire.Response{Code: wire.CodeRateLimited, RetryAfter: time.Second,
			Msg: fmt.Sprintf("%v: the tenant has %d watches waiting on this node", ErrRateLimited, watchLimit(t))}}
	}
	return context.WithValue(ctx, streamSlotKey{}, &streamSlot{tenant: id}), release, nil
}

// watchHeartbeat is the longest a stream stays silent.
const watchHeartbeat = 15 * time.Second

// jsonChange is one change of a version.
type jsonChange struct {
	Op            string  `json:"op"` // set, delete or delete_range
	Key           string  `json:"key"`
	KeyEncoding   string  `json:"key_encoding"`
	Value         *string `json:"value,omitempty"`
	ValueEncoding string  `json:"value_encoding,omitempty"`
	End           *string `json:"end,omitempty"`
	EndEncoding   string  `json:"end_encoding,omitempty"`
}

// jsonVersionEvent is the data of one event.
type jsonVersionEvent struct {
	Version uint64       `json:"version"`
	Changes []jsonChange `json:"changes"`
}

func isRateLimited(err error) bool {
	we, ok := err.(*wireError)
	return ok && we.resp.Code == wire.CodeRateLimited
}

func changeJSON(e *wire.Event) jsonChange {
	var c jsonChange
	c.Key, c.KeyEncoding = encodeBytes(e.Key)
	switch e.Kind {
	case wire.MutSet:
		c.Op = "set"
		v, enc := encodeBytes(e.Value)
		c.Value, c.ValueEncoding = &v, enc
	case wire.MutDelete:
		c.Op = "delete"
	default:
		c.Op = "delete_range"
		end, enc := encodeBytes(e.End)
		c.End, c.EndEncoding = &end, enc
	}
	return c
}

// watchStart reads where a watch resumes: after Last-Event-ID, or before
// from; ok is false when neither is given.
func watchStart(r *http.Request, q map[string][]string) (after uint64, ok bool, err error) {
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		v, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("%w: Last-Event-ID %q is not a version", ErrBadRequest, id)
		}
		return v, true, nil
	}
	if from, has := q["from"]; has {
		v, err := strconv.ParseUint(from[0], 10, 64)
		if err != nil || v == 0 {
			return 0, false, fmt.Errorf("%w: from=%q is not a version (1 or more)", ErrBadRequest, from[0])
		}
		return v - 1, true, nil
	}
	return 0, false, nil
}

func (a *httpAPI) watch(ctx context.Context, w http.ResponseWriter, ar *apiRequest) error {
	q := ar.query
	var start, end []byte
	if _, ok := q["key"]; ok {
		if _, p := q["prefix"]; p || q.Has("start") || q.Has("end") {
			return fmt.Errorf("%w: key with prefix, start or end", ErrBadRequest)
		}
		start = []byte(q.Get("key"))
		end = keyAfter(start)
	} else {
		var err error
		if start, end, _, err = keyRange(q); err != nil {
			return err
		}
	}
	after, resume, err := watchStart(ar.r, q)
	if err != nil {
		return err
	}
	var tenantID uint64
	if !resume {
		rv, err := a.answer(ctx, ar, &wire.Request{Op: wire.OpReadVersion, Tenant: ar.rt.tenant})
		if err != nil {
			return err
		}
		after, tenantID = rv.DataVersion, rv.TenantID
	}
	poll := func(wait time.Duration) (*wire.Response, error) {
		return a.answer(ctx, ar, &wire.Request{Op: wire.OpWatch, Tenant: ar.rt.tenant, Key: start, End: end,
			ReadVersion: after, TenantID: tenantID, Wait: wait})
	}
	// The first poll hardly waits: its refusal is the answer's status,
	// and a stream's headers should not wait for a change.
	resp, err := poll(time.Millisecond)
	if err != nil {
		return err
	}
	if tenantID == 0 {
		tenantID = resp.TenantID // the tenant first watched, not one re-created under its name
	}
	// The stream holds one of the tenant's watches from here to its end.
	ctx, release, err := a.holdWatch(ctx, keyspace.TenantID(resp.TenantID))
	if err != nil {
		return err
	}
	defer release()
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{}) // the request was read; the stream is long
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 16<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	flush := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(a.s.cfg.WriteTimeout))
		return bw.Flush() == nil && rc.Flush() == nil
	}
	// A retry hint for EventSource, and the stream's first bytes.
	_, _ = fmt.Fprintf(bw, "retry: 1000\n: watching after version %d\n\n", after)
	if !flush() {
		return nil
	}
	for first := true; ; {
		events := resp.Events
		for i := 0; i < len(events); {
			j := i
			ev := jsonVersionEvent{Version: events[i].Version}
			for ; j < len(events) && events[j].Version == ev.Version; j++ {
				ev.Changes = append(ev.Changes, changeJSON(&events[j]))
			}
			_, _ = fmt.Fprintf(bw, "id: %d\ndata: ", ev.Version)
			_ = enc.Encode(ev) // one line, ended by the encoder's newline
			_ = bw.WriteByte('\n')
			i = j
		}
		if len(events) == 0 && !first {
			_, _ = bw.WriteString(": heartbeat\n\n")
		}
		first = false
		if resp.DataVersion > after {
			after = resp.DataVersion
		}
		if !flush() {
			return nil // the client went
		}
		resp, err = poll(watchHeartbeat)
		for retries := 0; isRateLimited(err) && retries < 10; retries++ {
			// Over the tenant's rate: the stream waits, silent but for
			// heartbeats, and polls again.
			wait := min(max(err.(*wireError).resp.RetryAfter, 100*time.Millisecond), watchHeartbeat)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			_, _ = bw.WriteString(": heartbeat\n\n")
			if !flush() {
				return nil
			}
			resp, err = poll(watchHeartbeat)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Headers are out: the error is the stream's last event.
			var er *wire.Response
			if we, ok := err.(*wireError); ok {
				er = we.resp
			} else {
				// Not leading any more (errForward): the client resumes
				// from its last event ID through any node.
				er = &wire.Response{Code: wire.CodeUnavailable, Msg: "this node stopped leading: reconnect to resume"}
			}
			hc := httpCodeOf(er.Code)
			_, _ = bw.WriteString("event: error\ndata: ")
			_ = enc.Encode(apiErrorBody{Code: hc.name, Message: er.Msg})
			_ = bw.WriteByte('\n')
			flush()
			return nil
		}
	}
}
