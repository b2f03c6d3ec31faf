package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/keyspace"
)

// The keys endpoints: one key (GET, PUT, DELETE
// /v1/tenants/{tenant}/keys/{key}), a page of pairs (GET .../keys) and a
// range deletion (DELETE .../keys).

// Encodings of bytes in JSON: text when the bytes are valid UTF-8 without
// control characters (other than tab, CR and LF), base64 (standard, with
// padding) otherwise. Leaving control characters to base64 keeps a JSON
// string at most about twice its bytes (only `"` and `\` are escaped).
const (
	encText   = "utf-8"
	encBase64 = "base64"
)

// encodeBytes returns b as a JSON string and its encoding.
func encodeBytes(b []byte) (string, string) {
	if isText(b) {
		return string(b), encText
	}
	return base64.StdEncoding.EncodeToString(b), encBase64
}

func isText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, c := range b {
		if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f {
			return false
		}
	}
	return true
}

// decodeBytes reads s in encoding enc ("" or "utf-8": the string's bytes).
func decodeBytes(s, enc string) ([]byte, error) {
	switch enc {
	case "", encText:
		return []byte(s), nil
	case encBase64:
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%w: base64: %v", ErrBadRequest, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("%w: encoding %q (want %s or %s)", ErrBadRequest, enc, encText, encBase64)
}

// queryBool parses a boolean query parameter; absent is false.
func queryBool(q url.Values, name string) (bool, error) {
	v := q.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%w: %s=%q is not a boolean", ErrBadRequest, name, v)
	}
	return b, nil
}

// queryUint parses an unsigned query parameter; absent is 0.
func queryUint(q url.Values, name string) (uint64, error) {
	v := q.Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s=%q is not a number", ErrBadRequest, name, v)
	}
	return n, nil
}

// prefixEnd is the first key after every key that starts with prefix, or
// nil (the end of the tenant's keys) when there is none.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// keyRange reads a range from query parameters: prefix, or start and end
// (each optional). ok is false when none of them is present.
func keyRange(q url.Values) (start, end []byte, ok bool, err error) {
	_, hasPrefix := q["prefix"]
	_, hasStart := q["start"]
	_, hasEnd := q["end"]
	for _, n := range []string{"prefix", "start", "end"} {
		if len(q[n]) > 1 {
			return nil, nil, false, fmt.Errorf("%w: %s given %d times", ErrBadRequest, n, len(q[n]))
		}
	}
	if hasPrefix {
		if hasStart || hasEnd {
			return nil, nil, false, fmt.Errorf("%w: prefix with start or end", ErrBadRequest)
		}
		p := []byte(q.Get("prefix"))
		return p, prefixEnd(p), true, nil
	}
	return []byte(q.Get("start")), []byte(q.Get("end")), hasStart || hasEnd, nil
}

func (a *httpAPI) getKey(ctx context.Context, w http.ResponseWriter, ar *apiRequest) error {
	stale, err := queryBool(ar.query, "stale")
	if err != nil {
		return err
	}
	resp, err := a.answer(ctx, ar, &wire.Request{Op: wire.OpGet, Tenant: ar.rt.tenant, Key: ar.rt.key, Stale: stale})
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set(headerVersion, strconv.FormatUint(resp.DataVersion, 10))
	h.Set("Content-Length", strconv.Itoa(len(resp.Value)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp.Value)
	return nil
}

// versionBody is the answer to a write.
type versionBody struct {
	Version uint64 `json:"version"`
}

func (a *httpAPI) writeVersion(w http.ResponseWriter, v uint64) {
	w.Header().Set(headerVersion, strconv.FormatUint(v, 10))
	writeJSON(w, http.StatusOK, versionBody{Version: v})
}

func (a *httpAPI) putKey(ctx context.Context, w http.ResponseWriter, ar *apiRequest) error {
	resp, err := a.answer(ctx, ar, &wire.Request{Op: wire.OpSet, Tenant: ar.rt.tenant, Key: ar.rt.key, Value: ar.body})
	if err != nil {
		return err
	}
	a.writeVersion(w, resp.DataVersion)
	return nil
}

func (a *httpAPI) deleteKey(ctx context.Context, w http.ResponseWriter, ar *apiRequest) error {
	resp, err := a.answer(ctx, ar, &wire.Request{Op: wire.OpDelete, Tenant: ar.rt.tenant, Key: ar.rt.key})
	if err != nil {
		return err
	}
	a.writeVersion(w, resp.DataVersion)
	return nil
}

// deleteRange deletes [start, end) or a prefix; it needs at least one of
// them named (`?start=` is the beginning), so that a bare DELETE of
// /keys does not empty the tenant by accident.
func (a *httpAPI) deleteRange(ctx context.Context, w http.ResponseWriter, ar *apiRequest) error {
	start, end, ok, err := keyRange(ar.query)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: a range deletion names prefix, start or end", ErrBadRequest)
	}
	resp, err := a.answer(ctx, ar, &wire.Request{Op: wire.OpDeleteRange, Tenant: ar.rt.tenant, Key: start, End: end})
	if err != nil {
		return err
	}
	a.writeVersion(w, resp.DataVersion)
	return nil
}

// Page sizes of GET .../keys.
const (
	defaultKeysLimit = 100
	maxKeysLimit     = maxScanPage
)

// jsonKV is one pair of a page.
type jsonKV struct {
	Key           string `json:"key"`
	KeyEncoding   string `json:"key_encoding"`
	Value         string `json:"value"`
	ValueEncoding string `json:"value_encoding"`
	Version       uint64 `json:"version"`
}

func kvJSON(kv *wire.KV) jsonKV {
	var j jsonKV
	j.Key, j.KeyEncoding = encodeBytes(kv.Key)
	j.Value, j.ValueEncoding = encodeBytes(kv.Value)
	j.Version = kv.Version
	return j
}

// pageQuery is a parsed GET .../keys.
type pageQuery struct {
	start, end []byte
	limit      int
	reverse    bool
	stale      bool
}

// parsePageQuery reads prefix|start&end, limit, reverse, stale and cursor.
// The cursor (base64url of a key) narrows the range, never widens it: the
// next start of a forward page, the next end of a reverse one.
func parsePageQuery(q url.Values) (*pageQuery, error) {
	start, end, _, err := keyRange(q)
	if err != nil {
		return nil, err
	}
	if err := keyspace.CheckRange(start, end); err != nil {
		return nil, err // before a cursor narrows it
	}
	pq := &pageQuery{start: start, end: end, limit: defaultKeysLimit}
	if n, err := queryUint(q, "limit"); err != nil {
		return nil, err
	} else if n > maxKeysLimit {
		return nil, fmt.Errorf("%w: limit %d, at most %d", ErrBadRequest, n, maxKeysLimit)
	} else if n > 0 {
		pq.limit = int(n)
	}
	if pq.reverse, err = queryBool(q, "reverse"); err != nil {
		return nil, err
	}
	if pq.stale, err = queryBool(q, "stale"); err != nil {
		return nil, err
	}
	if c := q.Get("cursor"); c != "" {
		k, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil {
			return nil, fmt.Errorf("%w: cursor: %v", ErrBadRequest, err)
		}
		switch {
		case !pq.reverse && string(k) > string(pq.start):
			pq.start = k
		case pq.reverse && (len(pq.end) == 0 || string(k) < string(pq.end)):
			pq.end = k
		}
	}
	return pq, nil
}

func (a *httpAPI) listKeys(ctx context.Context, w http.ResponseWriter, ar *apiRequest) error {
	pq, err := parsePageQuery(ar.query)
	if err != nil {
		return err
	}
	req := &wire.Request{Op: wire.OpScan, Tenant: ar.rt.tenant, Key: pq.start, End: pq.end,
		Limit: pq.limit, Reverse: pq.reverse, Stale: pq.stale}
	exhausted := len(pq.end) > 0 && string(pq.start) >= string(pq.end)
	if exhausted {
		// A cursor at or past the range's end: an empty last page, but
		// asked like any page (the token, the tenant, its limits), of a
		// range of one key whose answer is dropped.
		req.Key, req.End, req.Limit = pq.end, keyAfter(pq.end), 1
	}
	resp, err := a.answer(ctx, ar, req)
	if err != nil {
		return err
	}
	if exhausted {
		resp.KVs, resp.More = nil, false
	}
	cursor := ""
	if resp.More && len(resp.KVs) > 0 {
		last := resp.KVs[len(resp.KVs)-1].Key
		next := last // a reverse page goes on below it
		if !pq.reverse {
			next = append(append([]byte(nil), last...), 0)
		}
		cursor = base64.RawURLEncoding.EncodeToString(next)
	}
	// Written pair by pair: the page is not held twice.
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	_, _ = bw.WriteString(`{"kvs":[`)
	var pair bytes.Buffer
	enc := json.NewEncoder(&pair)
	enc.SetEscapeHTML(false) // <, > and & as they are: a string stays at most twice its bytes
	for i := range resp.KVs {
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		pair.Reset()
		_ = enc.Encode(kvJSON(&resp.KVs[i]))
		_, _ = bw.Write(bytes.TrimSuffix(pair.Bytes(), []byte("\n")))
		resp.KVs[i] = wire.KV{}
	}
	more, _ := json.Marshal(resp.More)
	_, _ = fmt.Fprintf(bw, `],"more":%s`, more)
	if cursor != "" {
		_, _ = fmt.Fprintf(bw, `,"cursor":%q`, cursor)
	}
	_, _ = bw.WriteString("}\n")
	return bw.Flush()
}
