package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/internal/testcluster"
	"github.com/tenantkv/tenantkv/internal/testcluster/inproc"
	"github.com/tenantkv/tenantkv/server"
)

// The HTTP/JSON API (server/httpapi*.go) against real nodes: real Pebble,
// real raft over TCP on loopback, real HTTP on the node's HTTP address.

// httpc talks to one node's HTTP address with one token.
type httpc struct {
	t     testing.TB
	base  string
	token string
	hc    *http.Client
	rec   *[]exchange // if set, every answer is appended (httpapi_openapi_test.go)
}

// exchange is one request and its answer, for the OpenAPI check.
type exchange struct {
	method, path string
	answer       *httpAnswer
}

func newHTTPC(t testing.TB, addr, token string) *httpc {
	return &httpc{t: t, base: "http://" + addr, token: token, hc: &http.Client{Timeout: 30 * time.Second}}
}

func (c *httpc) with(token string) *httpc { d := *c; d.token = token; return &d }

// httpAnswer is one answer, its body read.
type httpAnswer struct {
	status int
	header http.Header
	body   []byte
}

func (a *httpAnswer) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(a.body, &m), "body %q", a.body)
	return m
}

// code is an error answer's JSON code.
func (a *httpAnswer) code(t testing.TB) string {
	t.Helper()
	require.Equal(t, "application/json", a.header.Get("Content-Type"), "status %d body %q", a.status, a.body)
	m := a.json(t)
	require.IsType(t, "", m["message"], "an error body has a message")
	return m["code"].(string)
}

func (c *httpc) do(method, path string, body []byte, hdr ...string) *httpAnswer {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	require.NoError(c.t, err)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.hc.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	a := &httpAnswer{status: resp.StatusCode, header: resp.Header, body: b}
	if c.rec != nil {
		*c.rec = append(*c.rec, exchange{method: method, path: req.URL.EscapedPath(), answer: a})
	}
	return a
}

func (c *httpc) doJSON(method, path string, v any) *httpAnswer {
	c.t.Helper()
	b, err := json.Marshal(v)
	require.NoError(c.t, err)
	return c.do(method, path, b, "Content-Type", "application/json")
}

// must asks and requires status.
func (c *httpc) must(status int, method, path string, body []byte, hdr ...string) *httpAnswer {
	c.t.Helper()
	a := c.do(method, path, body, hdr...)
	require.Equal(c.t, status, a.status, "%s %s: %s", method, path, a.body)
	return a
}

// tenantWithToken creates a tenant with cfg (the POST body's other fields)
// and a token of it, through the API.
func (c *httpc) tenantWithToken(name string, body map[string]any, readOnly bool) string {
	c.t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	body["name"] = name
	a := c.doJSON("POST", "/v1/tenants", body)
	require.Equal(c.t, http.StatusCreated, a.status, "%s", a.body)
	require.Equal(c.t, name, a.json(c.t)["name"])
	a = c.doJSON("POST", "/v1/tenants/"+name+"/tokens", map[string]any{"read_only": readOnly})
	require.Equal(c.t, http.StatusCreated, a.status, "%s", a.body)
	tok := a.json(c.t)["token"].(string)
	require.NotEmpty(c.t, tok)
	return tok
}

func keyPath(tenant string, key []byte) string {
	return "/v1/tenants/" + tenant + "/keys/" + escapeKey(key)
}

// escapeKey percent-encodes every byte that is not unreserved, "/" too.
func escapeKey(k []byte) string {
	var b strings.Builder
	for _, c := range k {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// pageKV decodes a pair of a JSON page.
func pageKV(t testing.TB, m map[string]any) (key, value []byte) {
	dec := func(s, enc any) []byte {
		switch enc {
		case "utf-8":
			return []byte(s.(string))
		case "base64":
			b, err := base64.StdEncoding.DecodeString(s.(string))
			require.NoError(t, err)
			return b
		}
		t.Fatalf("encoding %v", enc)
		return nil
	}
	return dec(m["key"], m["key_encoding"]), dec(m["value"], m["value_encoding"])
}

func TestHTTPKeys(t *testing.T) {
	s, op := startNode(t)
	opc := newHTTPC(t, s.HTTPAddr(), op)
	c := opc.with(opc.tenantWithToken("acme", nil, false))

	// Any bytes in a key survive the path: separators, dots, %, binary.
	keys := [][]byte{[]byte("plain"), []byte("a/b"), []byte("a//b"), []byte(".."), []byte("x/../y"),
		[]byte("100%"), []byte("sp ace+plus?q#h"), {0x00, 0xff, 0xfe}, []byte("é")}
	versions := map[string]uint64{}
	for i, k := range keys {
		val := []byte(fmt.Sprintf("value-%d\x00\xff", i))
		a := c.must(http.StatusOK, "PUT", keyPath("acme", k), val)
		v, err := strconv.ParseUint(a.header.Get("X-Tenantkv-Version"), 10, 64)
		require.NoError(t, err)
		require.EqualValues(t, v, a.json(t)["version"])
		versions[string(k)] = v
	}
	for i, k := range keys {
		a := c.must(http.StatusOK, "GET", keyPath("acme", k), nil)
		require.Equal(t, fmt.Sprintf("value-%d\x00\xff", i), string(a.body), "key %q", k)
		require.Equal(t, "application/octet-stream", a.header.Get("Content-Type"))
		require.Equal(t, strconv.FormatUint(versions[string(k)], 10), a.header.Get("X-Tenantkv-Version"))
	}
	// A stale read is served too; an empty value is not a missing key.
	c.must(http.StatusOK, "GET", keyPath("acme", []byte("plain"))+"?stale=true", nil)
	c.must(http.StatusOK, "PUT", keyPath("acme", []byte("empty")), nil)
	require.Empty(t, c.must(http.StatusOK, "GET", keyPath("acme", []byte("empty")), nil).body)

	require.Equal(t, "not_found", c.must(http.StatusNotFound, "GET", keyPath("acme", []byte("nope")), nil).code(t))
	c.must(http.StatusOK, "DELETE", keyPath("acme", []byte("empty")), nil)
	require.Equal(t, "not_found", c.must(http.StatusNotFound, "GET", keyPath("acme", []byte("empty")), nil).code(t))

	// Pages: all keys in order, two at a time, through the cursor; keys
	// and values that are not text come back as base64.
	var got [][]byte
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		q := "?limit=2"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		m := c.must(http.StatusOK, "GET", "/v1/tenants/acme/keys"+q, nil).json(t)
		for _, kv := range m["kvs"].([]any) {
			k, v := pageKV(t, kv.(map[string]any))
			require.Contains(t, string(v), "value-")
			got = append(got, k)
		}
		if m["more"] != true {
			require.Nil(t, m["cursor"])
			break
		}
		cursor = m["cursor"].(string)
	}
	require.Len(t, got, len(keys))
	for i := 1; i < len(got); i++ {
		require.Less(t, string(got[i-1]), string(got[i]))
	}
	// Reverse, by prefix, with a cursor too.
	var rev []string
	cursor = ""
	for {
		q := "?prefix=a%2F&reverse=true&limit=1"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		m := c.must(http.StatusOK, "GET", "/v1/tenants/acme/keys"+q, nil).json(t)
		for _, kv := range m["kvs"].([]any) {
			k, _ := pageKV(t, kv.(map[string]any))
			rev = append(rev, string(k))
		}
		if m["more"] != true {
			break
		}
		cursor = m["cursor"].(string)
	}
	require.Equal(t, []string{"a/b", "a//b"}, rev)
	m := c.must(http.StatusOK, "GET", "/v1/tenants/acme/keys?start="+url.QueryEscape("\x00")+"&end=b", nil).json(t)
	first := m["kvs"].([]any)[0].(map[string]any)
	require.Equal(t, "base64", first["key_encoding"])
	require.Equal(t, "base64", first["value_encoding"], "a value with NUL is not text")

	// Range deletion: needs a range named; deletes exactly it.
	require.Equal(t, "bad_request", c.must(http.StatusBadRequest, "DELETE", "/v1/tenants/acme/keys", nil).code(t))
	c.must(http.StatusOK, "DELETE", "/v1/tenants/acme/keys?prefix=a%2F", nil)
	c.must(http.StatusNotFound, "GET", keyPath("acme", []byte("a/b")), nil)
	c.must(http.StatusOK, "GET", keyPath("acme", []byte("plain")), nil)
	c.must(http.StatusOK, "DELETE", "/v1/tenants/acme/keys?start=", nil)
	m = c.must(http.StatusOK, "GET", "/v1/tenants/acme/keys", nil).json(t)
	require.Empty(t, m["kvs"])

	// The operator reaches the tenant by name too.
	opc.must(http.StatusOK, "PUT", keyPath("acme", []byte("by-operator")), []byte("1"))
	c.must(http.StatusOK, "GET", keyPath("acme", []byte("by-operator")), nil)
	// X-Tenant-ID that agrees is fine.
	c.must(http.StatusOK, "GET", keyPath("acme", []byte("by-operator")), nil, "X-Tenant-ID", "acme")
}

func TestHTTPErrors(t *testing.T) {
	rng := testcluster.Rand(t)
	s, op := startNode(t)
	opc := newHTTPC(t, s.HTTPAddr(), op)
	tok := opc.tenantWithToken("acme", nil, false)
	c := opc.with(tok)
	opc.tenantWithToken("globex", nil, false)
	opc.must(http.StatusOK, "PUT", keyPath("globex", []byte("secret")), []byte("s"))

	// No token and bad tokens: one 401, one body, whatever the token.
	noTok := c.with("").must(http.StatusUnauthorized, "GET", keyPath("acme", []byte("k")), nil)
	require.Equal(t, "unauthenticated", noTok.code(t))
	require.NotEmpty(t, noTok.header.Get("WWW-Authenticate"))
	bad := []string{"garbage", tok[:len(tok)-1] + "x", "tkv_" + strings.Repeat("a", 40), tok + "x"}
	bad = append(bad, strconv.FormatInt(rng.Int64(), 36))
	for _, b := range bad {
		a := c.with(b).must(http.StatusUnauthorized, "GET", keyPath("acme", []byte("k")), nil)
		require.Equal(t, noTok.body, a.body, "token %q", b)
	}

	// Another tenant, a missing one, an invalid name, a mismatched
	// X-Tenant-ID: the same 403 and the same body.
	denied := c.must(http.StatusForbidden, "GET", keyPath("globex", []byte("secret")), nil)
	require.Equal(t, "permission_denied", denied.code(t))
	for _, a := range []*httpAnswer{
		c.do("GET", keyPath("nosuch", []byte("secret")), nil),
		c.do("GET", keyPath("NOT-A-NAME!", []byte("secret")), nil),
		c.do("PUT", keyPath("globex", []byte("secret")), []byte("x")),
		c.do("GET", "/v1/tenants/globex/keys", nil),
		c.do("DELETE", "/v1/tenants/globex/keys?start=", nil),
		c.do("GET", keyPath("acme", []byte("k")), nil, "X-Tenant-ID", "globex"),
		c.do("GET", keyPath("acme", []byte("k")), nil, "X-Tenant-ID", "nosuch"),
		c.do("GET", "/v1/tenants/globex", nil),
		c.do("GET", "/v1/tenants/nosuch", nil),
		c.do("GET", "/v1/tenants", nil),
		c.do("GET", "/v1/tenants/acme/tokens", nil),
		c.doJSON("POST", "/v1/tenants/acme/tokens", map[string]any{}),
		c.doJSON("POST", "/v1/tenants", map[string]any{"name": "mine"}),
		c.doJSON("POST", "/v1/tenants/globex/txn", map[string]any{"reads": []any{map[string]any{"key": "secret"}}}),
		opc.do("GET", keyPath("acme", []byte("k")), nil, "X-Tenant-ID", "globex"),
	} {
		require.Equal(t, http.StatusForbidden, a.status, "%s", a.body)
		require.Equal(t, denied.body, a.body)
	}
	require.Equal(t, "s", string(opc.must(http.StatusOK, "GET", keyPath("globex", []byte("secret")), nil).body), "globex untouched")
	// An operator may learn that a tenant does not exist.
	require.Equal(t, "tenant_not_found", opc.must(http.StatusNotFound, "GET", keyPath("nosuch", []byte("k")), nil).code(t))

	// Sizes: key, value, body, query.
	require.Equal(t, "key_too_large", c.must(http.StatusRequestEntityTooLarge, "PUT", keyPath("acme", bytes.Repeat([]byte("k"), 10_001)), []byte("v")).code(t))
	require.Equal(t, "value_too_large", c.must(http.StatusRequestEntityTooLarge, "PUT", keyPath("acme", []byte("k")), make([]byte, 100_001)).code(t))
	require.Equal(t, "too_large", c.must(http.StatusRequestEntityTooLarge, "PUT", keyPath("acme", []byte("k")), make([]byte, 17<<20)).code(t))
	c.must(http.StatusRequestURITooLong, "GET", "/v1/tenants/acme/keys?prefix="+strings.Repeat("p", 101<<10), nil)
	require.Equal(t, "invalid_key", c.must(http.StatusBadRequest, "PUT", "/v1/tenants/acme/keys/", []byte("v")).code(t))
	require.Equal(t, "bad_request", c.must(http.StatusBadRequest, "GET", "/v1/tenants/acme/keys?limit=1001", nil).code(t))
	require.Equal(t, "bad_request", c.must(http.StatusBadRequest, "GET", "/v1/tenants/acme/keys?stale=maybe", nil).code(t))
	require.Equal(t, "bad_request", c.must(http.StatusBadRequest, "GET", "/v1/tenants/acme/keys?cursor=!!", nil).code(t))
	require.Equal(t, "invalid_range", c.must(http.StatusBadRequest, "GET", "/v1/tenants/acme/keys?start=b&end=a", nil).code(t))
	require.Equal(t, "not_found", c.must(http.StatusNotFound, "GET", "/v1/tenants/acme/nothing", nil).code(t))
	c.must(http.StatusMethodNotAllowed, "POST", keyPath("acme", []byte("k")), nil)

	// Tenant states and token kinds.
	ro := opc.with(opc.tenantWithToken("reader", nil, true))
	require.Equal(t, "permission_denied", ro.must(http.StatusForbidden, "PUT", keyPath("reader", []byte("k")), []byte("v")).code(t))
	ro.must(http.StatusNotFound, "GET", keyPath("reader", []byte("k")), nil)
	opc.doJSON("PATCH", "/v1/tenants/acme", map[string]any{"state": "read-only"})
	require.Equal(t, "tenant_read_only", c.must(http.StatusForbidden, "PUT", keyPath("acme", []byte("k")), []byte("v")).code(t))
	require.Equal(t, http.StatusOK, opc.doJSON("PATCH", "/v1/tenants/acme", map[string]any{"state": "active"}).status)
	require.Equal(t, "invalid_argument", opc.doJSON("PATCH", "/v1/tenants/acme", map[string]any{"state": "sleepy"}).code(t))
	require.Equal(t, "tenant_exists", opc.doJSON("POST", "/v1/tenants", map[string]any{"name": "acme"}).code(t))
	require.Equal(t, "invalid_name", opc.doJSON("POST", "/v1/tenants", map[string]any{"name": "Bad Name"}).code(t))

	// Quota: 507; rate limit: 429 with Retry-After.
	q := opc.with(opc.tenantWithToken("small", map[string]any{"limits": map[string]any{"max_keys": 1}}, false))
	q.must(http.StatusOK, "PUT", keyPath("small", []byte("a")), []byte("1"))
	require.Equal(t, "quota_exceeded", q.must(http.StatusInsufficientStorage, "PUT", keyPath("small", []byte("b")), []byte("1")).code(t))
	r := opc.with(opc.tenantWithToken("slow", map[string]any{"limits": map[string]any{"ops_per_sec": 1, "burst": 1}}, false))
	var limited *httpAnswer
	for i := 0; i < 20 && limited == nil; i++ {
		if a := r.do("GET", keyPath("slow", []byte("k")), nil); a.status == http.StatusTooManyRequests {
			limited = a
		} else {
			require.Equal(t, http.StatusNotFound, a.status, "%s", a.body)
		}
	}
	require.NotNil(t, limited, "20 requests at once over 1 per second")
	require.Equal(t, "rate_limited", limited.code(t))
	secs, err := strconv.Atoi(limited.header.Get("Retry-After"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, secs, 1)
}

func TestHTTPTenantsAndTokens(t *testing.T) {
	s, op := startNode(t)
	opc := newHTTPC(t, s.HTTPAddr(), op)
	a := opc.doJSON("POST", "/v1/tenants", map[string]any{"name": "acme", "labels": map[string]string{"plan": "gold"},
		"limits": map[string]any{"max_keys": 10}})
	require.Equal(t, http.StatusCreated, a.status, "%s", a.body)
	ten := a.json(t)
	require.Equal(t, "active", ten["state"])
	require.EqualValues(t, 10, ten["limits"].(map[string]any)["max_keys"])
	require.Equal(t, "gold", ten["labels"].(map[string]any)["plan"])
	opc.doJSON("POST", "/v1/tenants", map[string]any{"name": "beta"})

	list := opc.must(http.StatusOK, "GET", "/v1/tenants?limit=1", nil).json(t)
	require.Len(t, list["tenants"], 1)
	require.Equal(t, "acme", list["next"])
	list = opc.must(http.StatusOK, "GET", "/v1/tenants?after=acme", nil).json(t)
	require.Equal(t, "beta", list["tenants"].([]any)[0].(map[string]any)["name"])

	// Tokens: made, listed, used, revoked.
	a = opc.doJSON("POST", "/v1/tenants/acme/tokens", map[string]any{"ttl_seconds": 3600})
	require.Equal(t, http.StatusCreated, a.status, "%s", a.body)
	tok := a.json(t)
	c := opc.with(tok["token"].(string))
	c.must(http.StatusOK, "PUT", keyPath("acme", []byte("k")), []byte("v"))
	toks := opc.must(http.StatusOK, "GET", "/v1/tenants/acme/tokens", nil).json(t)["tokens"].([]any)
	require.Len(t, toks, 1)
	require.Equal(t, tok["id"], toks[0].(map[string]any)["id"])
	require.NotEmpty(t, toks[0].(map[string]any)["expires_at"])
	// A tenant token sees its own record, not the others'.
	require.Equal(t, "acme", c.must(http.StatusOK, "GET", "/v1/tenants/acme", nil).json(t)["name"])
	// Revoking under another tenant's path finds nothing.
	require.Equal(t, "token_not_found", opc.must(http.StatusNotFound, "DELETE", "/v1/tenants/beta/tokens/"+tok["id"].(string), nil).code(t))
	opc.must(http.StatusNoContent, "DELETE", "/v1/tenants/acme/tokens/"+tok["id"].(string), nil)
	c.must(http.StatusUnauthorized, "GET", keyPath("acme", []byte("k")), nil)

	// Update: rename, labels replaced, limits changed.
	a = opc.doJSON("PATCH", "/v1/tenants/acme", map[string]any{"new_name": "acme2", "labels": map[string]string{}, "limits": map[string]any{"max_keys": 20}})
	require.Equal(t, http.StatusOK, a.status, "%s", a.body)
	ten = a.json(t)
	require.Equal(t, "acme2", ten["name"])
	require.Empty(t, ten["labels"])
	require.EqualValues(t, 20, ten["limits"].(map[string]any)["max_keys"])
	require.Equal(t, "tenant_not_found", opc.must(http.StatusNotFound, "GET", "/v1/tenants/acme", nil).code(t))
	opc.must(http.StatusNoContent, "DELETE", "/v1/tenants/acme2", nil)
	opc.must(http.StatusNotFound, "GET", "/v1/tenants/acme2", nil)
	require.Equal(t, "bad_request", opc.do("POST", "/v1/tenants", []byte(`{"name":"x","bogus":1}`)).code(t))
}

func TestHTTPTxn(t *testing.T) {
	s, op := startNode(t)
	opc := newHTTPC(t, s.HTTPAddr(), op)
	c := opc.with(opc.tenantWithToken("acme", nil, false))
	txn := func(status int, body map[string]any) map[string]any {
		t.Helper()
		a := c.doJSON("POST", "/v1/tenants/acme/txn", body)
		require.Equal(t, status, a.status, "%s", a.body)
		require.Equal(t, "application/json", a.header.Get("Content-Type"))
		return a.json(t)
	}
	// Create if absent, with an atomic add and a binary key.
	bin := base64.StdEncoding.EncodeToString([]byte{0, 0xff})
	m := txn(http.StatusOK, map[string]any{
		"conditions": []any{map[string]any{"key": "owner", "absent": true}},
		"mutations": []any{
			map[string]any{"op": "set", "key": "owner", "value": "alice"},
			map[string]any{"op": "add", "key": "count", "delta": 5},
			map[string]any{"op": "set", "key": bin, "value": bin, "encoding": "base64"},
			map[string]any{"op": "set", "key": "tmp/1", "value": "x"},
			map[string]any{"op": "set", "key": "tmp/2", "value": "x"},
		},
	})
	require.Equal(t, true, m["applied"])
	v1 := m["version"].(float64)
	require.Positive(t, v1)
	// The same condition fails now: 409, nothing applied, the failing
	// condition named.
	m = txn(http.StatusConflict, map[string]any{
		"conditions": []any{map[string]any{"key": "owner", "absent": true}},
		"mutations":  []any{map[string]any{"op": "set", "key": "owner", "value": "mallory"}},
	})
	require.Equal(t, false, m["applied"])
	require.Equal(t, "condition_failed", m["code"])
	require.Equal(t, []any{0.0}, m["failed"])
	require.Equal(t, "alice", string(c.must(http.StatusOK, "GET", keyPath("acme", []byte("owner")), nil).body))

	// Value and version conditions; reads of a key and of a range; a
	// delete-range and a delete; another add.
	ver, err := strconv.ParseUint(c.must(http.StatusOK, "GET", keyPath("acme", []byte("owner")), nil).header.Get("X-Tenantkv-Version"), 10, 64)
	require.NoError(t, err)
	m = txn(http.StatusOK, map[string]any{
		"reads": []any{map[string]any{"key": "owner"}, map[string]any{"prefix": "tmp/"}, map[string]any{"key": "missing"}},
		"conditions": []any{
			map[string]any{"key": "owner", "value": "alice"},
			map[string]any{"key": "owner", "version": ver},
		},
		"mutations": []any{
			map[string]any{"op": "delete_range", "prefix": "tmp/"},
			map[string]any{"op": "delete", "key": bin, "encoding": "base64"},
			map[string]any{"op": "add", "key": "count", "delta": -2},
		},
	})
	require.Equal(t, true, m["applied"])
	reads := m["reads"].([]any)
	require.Equal(t, "alice", reads[0].(map[string]any)["value"])
	require.Equal(t, true, reads[0].(map[string]any)["found"])
	require.Len(t, reads[1].(map[string]any)["kvs"], 2)
	require.Equal(t, false, reads[2].(map[string]any)["found"])
	require.Greater(t, m["version"].(float64), v1)
	c.must(http.StatusNotFound, "GET", keyPath("acme", []byte("tmp/1")), nil)
	c.must(http.StatusNotFound, "GET", keyPath("acme", []byte{0, 0xff}), nil)
	count := c.must(http.StatusOK, "GET", keyPath("acme", []byte("count")), nil).body
	require.Equal(t, []byte{3, 0, 0, 0, 0, 0, 0, 0}, count, "5-2 as a little-endian int64")

	// A wrong version fails; a read-only transaction applies (it reads).
	m = txn(http.StatusConflict, map[string]any{"conditions": []any{map[string]any{"key": "owner", "version": ver + 1000}}})
	require.Equal(t, false, m["applied"])
	m = txn(http.StatusOK, map[string]any{"reads": []any{map[string]any{"start": "a", "end": "z", "limit": 1}}})
	require.Equal(t, true, m["reads"].([]any)[0].(map[string]any)["more"])

	// Bad bodies: 400, or 413 for too many parts.
	for _, body := range []string{`{`, `{"mutations":[{"op":"frob","key":"k"}]}`, `{"conditions":[{"key":"k"}]}`,
		`{"conditions":[{"key":"k","absent":true,"version":1}]}`, `{"mutations":[{"op":"add","key":"k"}]}`,
		`{"reads":[{"key":"k","prefix":"p"}]}`, `{"unknown":1}`, `{"reads":[{"key":"!!","encoding":"base64"}]}`, `{} {}`} {
		a := c.do("POST", "/v1/tenants/acme/txn", []byte(body))
		require.Equal(t, http.StatusBadRequest, a.status, "%s: %s", body, a.body)
	}
	many := make([]any, 129)
	for i := range many {
		many[i] = map[string]any{"key": "k"}
	}
	require.Equal(t, "too_large", c.doJSON("POST", "/v1/tenants/acme/txn", map[string]any{"reads": many}).code(t))
	require.Equal(t, "invalid_key", c.doJSON("POST", "/v1/tenants/acme/txn", map[string]any{"mutations": []any{map[string]any{"op": "set", "key": ""}}}).code(t))
}

func TestHTTPForwarding(t *testing.T) {
	cl := inproc.Start(t, 3, &inproc.Options{Configure: func(n *inproc.Node, cfg *server.Config) {
		cfg.HTTPAddr = "127.0.0.1:0"
	}})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	leader, err := cl.Leader(ctx)
	require.NoError(t, err)
	var followers []*inproc.Node
	for _, n := range cl.Nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}
	f1 := newHTTPC(t, followers[0].Server().HTTPAddr(), cl.Token)
	f2 := newHTTPC(t, followers[1].Server().HTTPAddr(), cl.Token)
	// Administration, writes, linearizable reads and transactions sent to
	// followers are served by the leader, through them.
	tok := f1.tenantWithToken("acme", nil, false)
	c1, c2 := f1.with(tok), f2.with(tok)
	for i := range 20 {
		k := []byte(fmt.Sprintf("k%02d", i))
		c1.must(http.StatusOK, "PUT", keyPath("acme", k), []byte(strconv.Itoa(i)))
		// Written through one follower, read at once through the other:
		// linearizable, so the other follower cannot answer from its own
		// state, which may lag.
		require.Equal(t, strconv.Itoa(i), string(c2.must(http.StatusOK, "GET", keyPath("acme", k), nil).body))
	}
	m := c2.must(http.StatusOK, "GET", "/v1/tenants/acme/keys", nil).json(t)
	require.Len(t, m["kvs"], 20)
	a := c2.doJSON("POST", "/v1/tenants/acme/txn", map[string]any{
		"conditions": []any{map[string]any{"key": "k00", "value": "0"}},
		"mutations":  []any{map[string]any{"op": "set", "key": "k00", "value": "zero"}},
	})
	require.Equal(t, http.StatusOK, a.status, "%s", a.body)
	c1.must(http.StatusOK, "DELETE", keyPath("acme", []byte("k01")), nil)
	// Stale reads are served by the follower itself, from its own state:
	// it catches up within a while.
	require.NoError(t, testcluster.Poll(ctx, func() error {
		a := c2.do("GET", keyPath("acme", []byte("k00"))+"?stale=true", nil)
		if a.status != http.StatusOK || string(a.body) != "zero" {
			return fmt.Errorf("stale read: %d %q", a.status, a.body)
		}
		return nil
	}))
	// A request already forwarded once is not forwarded again.
	a = c1.do("GET", keyPath("acme", []byte("k02")), nil, "X-Tenantkv-Forwarded", "elsewhere")
	require.Equal(t, http.StatusServiceUnavailable, a.status, "%s", a.body)
	require.Equal(t, "unavailable", a.code(t))
	require.Equal(t, "1", a.header.Get("Retry-After"))
	// ... but a stale read is served where it lands.
	c1.must(http.StatusOK, "GET", keyPath("acme", []byte("k02"))+"?stale=true", nil, "X-Tenantkv-Forwarded", "elsewhere")
	// Errors come back through the follower as the leader said them.
	require.Equal(t, "not_found", c1.must(http.StatusNotFound, "GET", keyPath("acme", []byte("k01")), nil).code(t))
	require.Equal(t, "tenant_exists", f2.doJSON("POST", "/v1/tenants", map[string]any{"name": "acme"}).code(t))
}

// sseEvent is one Server-Sent Event.
type sseEvent struct{ id, event, data string }

// sseStream is an open watch.
type sseStream struct {
	resp *http.Response
	br   *bufio.Reader
}

func (c *httpc) openWatch(query string, hdr ...string) (*sseStream, *httpAnswer) {
	c.t.Helper()
	req, err := http.NewRequest("GET", c.base+"/v1/tenants/acme/watch?"+query, nil)
	require.NoError(c.t, err)
	req.Header.Set("Authorization", "Bearer "+c.token)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := (&http.Client{}).Do(req)
	require.NoError(c.t, err)
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return nil, &httpAnswer{status: resp.StatusCode, header: resp.Header, body: b}
	}
	require.Equal(c.t, "text/event-stream", resp.Header.Get("Content-Type"))
	s := &sseStream{resp: resp, br: bufio.NewReader(resp.Body)}
	c.t.Cleanup(s.close)
	return s, nil
}

func (s *sseStream) close() { s.resp.Body.Close() }

// next reads the next event, skipping comments and retry hints.
func (s *sseStream) next(t testing.TB) sseEvent {
	t.Helper()
	var ev sseEvent
	for {
		line, err := s.br.ReadString('\n')
		require.NoError(t, err)
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.data != "" || ev.id != "" {
				return ev
			}
		case strings.HasPrefix(line, ":"), strings.HasPrefix(line, "retry:"):
		case strings.HasPrefix(line, "id: "):
			ev.id = line[len("id: "):]
		case strings.HasPrefix(line, "event: "):
			ev.event = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			ev.data += line[len("data: "):]
		default:
			t.Fatalf("unexpected line %q", line)
		}
	}
}

// changes decodes an event's changes as "op key=value" strings.
func (ev sseEvent) changes(t testing.TB) (uint64, []string) {
	t.Helper()
	var d struct {
		Version uint64 `json:"version"`
		Changes []struct {
			Op    string  `json:"op"`
			Key   string  `json:"key"`
			Value *string `json:"value"`
		} `json:"changes"`
	}
	require.NoError(t, json.Unmarshal([]byte(ev.data), &d), ev.data)
	require.Equal(t, strconv.FormatUint(d.Version, 10), ev.id, "an event's id is its version")
	var out []string
	for _, c := range d.Changes {
		s := c.Op + " " + c.Key
		if c.Value != nil {
			s += "=" + *c.Value
		}
		out = append(out, s)
	}
	return d.Version, out
}

func TestHTTPWatchResumes(t *testing.T) {
	rng := testcluster.Rand(t)
	s, op := startNode(t)
	opc := newHTTPC(t, s.HTTPAddr(), op)
	c := opc.with(opc.tenantWithToken("acme", map[string]any{"limits": map[string]any{"max_watches": 1}}, false))
	c.must(http.StatusOK, "PUT", keyPath("acme", []byte("w/before")), []byte("old"))

	w, refused := c.openWatch("prefix=w%2F")
	require.Nil(t, refused)
	// The tenant's watch limit counts HTTP watches: a second one is
	// refused while the first waits (it polls again at once after each
	// answer, so the refusal comes within a few tries).
	var limited *httpAnswer
	require.NoError(t, testcluster.Poll(t.Context(), func() error {
		w2, a := c.openWatch("prefix=w%2F")
		if a == nil {
			w2.close()
			return fmt.Errorf("a second watch was admitted")
		}
		limited = a
		return nil
	}))
	require.Equal(t, http.StatusTooManyRequests, limited.status)
	require.Equal(t, "rate_limited", limited.code(t))
	require.NotEmpty(t, limited.header.Get("Retry-After"))

	var want []string
	write := func(n int) {
		for range n {
			k := fmt.Sprintf("w/k%d", rng.IntN(5))
			v := strconv.Itoa(len(want))
			if rng.IntN(4) == 0 {
				// Two changes in one version: one event.
				a := c.doJSON("POST", "/v1/tenants/acme/txn", map[string]any{"mutations": []any{
					map[string]any{"op": "set", "key": k, "value": v}, map[string]any{"op": "delete", "key": "w/gone"}}})
				require.Equal(t, http.StatusOK, a.status, "%s", a.body)
				want = append(want, "set "+k+"="+v+",delete w/gone")
				continue
			}
			c.must(http.StatusOK, "PUT", keyPath("acme", []byte(k)), []byte(v))
			c.must(http.StatusOK, "PUT", keyPath("acme", []byte("outside")), []byte(v)) // not watched
			want = append(want, "set "+k+"="+v)
		}
	}
	var got []string
	var versions []uint64
	read := func(w *sseStream, n int) {
		for range n {
			v, ch := w.next(t).changes(t)
			if len(versions) > 0 {
				require.Greater(t, v, versions[len(versions)-1], "versions increase, none repeats")
			}
			versions = append(versions, v)
			got = append(got, strings.Join(ch, ","))
		}
	}
	write(10)
	read(w, 10)
	write(10)
	read(w, 5)
	// The connection drops with events in flight; more are written.
	w.close()
	write(10)
	last := strconv.FormatUint(versions[len(versions)-1], 10)
	require.NoError(t, testcluster.Poll(t.Context(), func() error {
		var a *httpAnswer
		w, a = c.openWatch("prefix=w%2F", "Last-Event-ID", last)
		if a != nil {
			return fmt.Errorf("reconnect: %d %s", a.status, a.body) // the old watch may hold the slot a moment
		}
		return nil
	}))
	read(w, 15)
	require.Equal(t, want, got, "every event once, in order, across the reconnect")
	w.close()

	// from=V starts at V itself; a version not reached yet is refused.
	require.NoError(t, testcluster.Poll(t.Context(), func() error {
		var a *httpAnswer
		w, a = c.openWatch("prefix=w%2F&from=" + strconv.FormatUint(versions[3], 10))
		if a != nil {
			return fmt.Errorf("from: %d %s", a.status, a.body)
		}
		return nil
	}))
	_, ch := w.next(t).changes(t)
	require.Equal(t, want[3], strings.Join(ch, ","))
	w.close()
	require.NoError(t, testcluster.Poll(t.Context(), func() error {
		_, a := c.openWatch("key=w%2Fk1&from=999999")
		if a == nil || a.status == http.StatusTooManyRequests {
			return fmt.Errorf("want a refusal of a version ahead")
		}
		require.Equal(t, http.StatusBadRequest, a.status, "%s", a.body)
		return nil
	}))
	require.Equal(t, http.StatusBadRequest, c.do("GET", "/v1/tenants/acme/watch?key=a&prefix=b", nil).status)
	require.Equal(t, http.StatusBadRequest, c.do("GET", "/v1/tenants/acme/watch", nil, "Last-Event-ID", "x").status)
}

// TestHTTPCursorPastTheEnd: a cursor past the range's end is an empty
// page, but still a request of the tenant: another tenant's is refused.
func TestHTTPCursorPastTheEnd(t *testing.T) {
	s, op := startNode(t)
	opc := newHTTPC(t, s.HTTPAddr(), op)
	c := opc.with(opc.tenantWithToken("acme", nil, false))
	opc.tenantWithToken("globex", nil, false)
	c.must(http.StatusOK, "PUT", keyPath("acme", []byte("b")), []byte("1"))
	past := "?end=b&cursor=" + base64.RawURLEncoding.EncodeToString([]byte("c"))
	m := c.must(http.StatusOK, "GET", "/v1/tenants/acme/keys"+past, nil).json(t)
	require.Empty(t, m["kvs"])
	require.Equal(t, false, m["more"])
	require.Equal(t, "permission_denied", c.must(http.StatusForbidden, "GET", "/v1/tenants/globex/keys"+past, nil).code(t))
	require.Equal(t, "permission_denied", c.must(http.StatusForbidden, "GET", "/v1/tenants/nosuch/keys"+past, nil).code(t))
}

// TestHTTPConnectionSlots: an HTTP request of a tenant token holds one of
// the tenant's connection slots on the node while it runs, as a binary
// connection does, and the HTTP address's connections count against the
// node's cap (MaxConnections and the operators' reserve).
func TestHTTPConnectionSlots(t *testing.T) {
	s, op := startNodeWith(t, func(cfg *server.Config) { cfg.MaxConnections = 4; cfg.MaxConnectionsPerTenant = 4 })
	opc := newHTTPC(t, s.HTTPAddr(), op)
	c := opc.with(opc.tenantWithToken("acme", map[string]any{"limits": map[string]any{"max_connections": 1}}, false))
	w, refused := c.openWatch("prefix=k")
	require.Nil(t, refused)
	// The stream holds the tenant's one slot: another request is refused
	// until it ends.
	a := c.must(http.StatusServiceUnavailable, "GET", keyPath("acme", []byte("k")), nil)
	require.Equal(t, "too_many_connections", a.code(t))
	require.NotEmpty(t, a.header.Get("Retry-After"))
	w.close()
	require.NoError(t, testcluster.Poll(t.Context(), func() error {
		if a := c.do("GET", keyPath("acme", []byte("k")), nil); a.status != http.StatusNotFound {
			return fmt.Errorf("after the stream: %d %s", a.status, a.body)
		}
		return nil
	}))

	// The node's cap: 4 connections and 64 for operators; the HTTP
	// address's count. Idle keep-alive connections of the clients above
	// count too, so fill up to the cap and look for the refusal.
	var conns []net.Conn
	t.Cleanup(func() {
		for _, nc := range conns {
			nc.Close()
		}
	})
	var refusal string
	for i := 0; i < 4+64+8 && refusal == ""; i++ {
		nc, err := net.Dial("tcp", s.HTTPAddr())
		require.NoError(t, err)
		conns = append(conns, nc)
		// A refused connection is answered at once; an accepted one
		// answers a request.
		_, err = io.WriteString(nc, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(nc).ReadString('\n')
		require.NoError(t, err)
		if strings.Contains(line, "503") {
			refusal = line
		}
	}
	require.NotEmpty(t, refusal, "the node accepted past its cap")
}

// TestHTTPWatchResumesAcrossLeaderLoss: a watch through a follower, whose
// leader dies; the client reconnects to a surviving node with
// Last-Event-ID and gets exactly the events after the last it had, as a
// fresh watch of the whole history shows them.
func TestHTTPWatchResumesAcrossLeaderLoss(t *testing.T) {
	cl := inproc.Start(t, 3, &inproc.Options{Configure: func(n *inproc.Node, cfg *server.Config) {
		cfg.HTTPAddr = "127.0.0.1:0"
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	leader, err := cl.Leader(ctx)
	require.NoError(t, err)
	var fs []*inproc.Node
	for _, n := range cl.Nodes {
		if n != leader {
			fs = append(fs, n)
		}
	}
	f1 := newHTTPC(t, fs[0].Server().HTTPAddr(), cl.Token)
	f2 := newHTTPC(t, fs[1].Server().HTTPAddr(), cl.Token)
	tok := f1.tenantWithToken("acme", nil, false)
	c1, c2 := f1.with(tok), f2.with(tok)
	w, refused := c1.openWatch("prefix=k")
	require.Nil(t, refused)
	// put writes through c, retrying while no leader answers (503); an
	// unknown outcome (504) is retried too: the history, not this test,
	// says what happened.
	put := func(c *httpc, k, v string) {
		require.NoError(t, testcluster.Poll(ctx, func() error {
			a := c.do("PUT", keyPath("acme", []byte(k)), []byte(v))
			if a.status != http.StatusOK {
				return fmt.Errorf("put %s: %d %s", k, a.status, a.body)
			}
			return nil
		}))
	}
	for i := range 5 {
		put(c2, fmt.Sprintf("k%d", i), "before")
	}
	var lastSeen uint64
	for range 5 {
		lastSeen, _ = w.next(t).changes(t)
	}
	require.True(t, cl.Kill(leader))
	for i := 5; i < 10; i++ {
		put(c2, fmt.Sprintf("k%d", i), "after")
	}
	w.close()
	var resumed *sseStream
	require.NoError(t, testcluster.Poll(ctx, func() error {
		var a *httpAnswer
		resumed, a = c2.openWatch("prefix=k", "Last-Event-ID", strconv.FormatUint(lastSeen, 10))
		if a != nil {
			return fmt.Errorf("resume: %d %s", a.status, a.body)
		}
		return nil
	}))
	all, refused := c2.openWatch("prefix=k&from=1")
	require.Nil(t, refused)
	var want, got []string
	for len(want) < 5 {
		v, ch := all.next(t).changes(t)
		if v > lastSeen {
			want = append(want, fmt.Sprint(v, ch))
		}
	}
	for len(got) < len(want) {
		v, ch := resumed.next(t).changes(t)
		require.Greater(t, v, lastSeen)
		got = append(got, fmt.Sprint(v, ch))
	}
	require.Equal(t, want, got)
}
