package server_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// TestHTTPOpenAPI checks the server's answers against docs/openapi.yaml:
// a scenario that calls every operation, with answers of most statuses,
// is recorded, and every answer must be one the document gives for its
// operation: the status listed, the content type declared, a JSON body of
// the schema (types, required fields, enums, no unknown fields where the
// schema says so), the headers it names present. Every operation of the
// document must have been answered at least once.
func TestHTTPOpenAPI(t *testing.T) {
	raw, err := os.ReadFile("../docs/openapi.yaml")
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &doc))
	require.Equal(t, "3.1.0", doc["openapi"])
	spec := &openAPI{doc: doc}

	s, op := startNode(t)
	var rec []exchange
	opc := newHTTPC(t, s.HTTPAddr(), op)
	opc.rec = &rec
	scenarioForOpenAPI(t, opc)

	seen := map[string]bool{}
	for _, ex := range rec {
		id, opn := spec.operation(t, ex.method, ex.path)
		if opn == nil {
			// Only unknown paths and methods may have no operation.
			require.Contains(t, []int{http.StatusNotFound, http.StatusMethodNotAllowed}, ex.answer.status, "%s %s", ex.method, ex.path)
			continue
		}
		seen[id] = true
		spec.checkAnswer(t, id, opn, ex)
	}
	var missing []string
	for _, id := range spec.operationIDs() {
		if !seen[id] {
			missing = append(missing, id)
		}
	}
	require.Empty(t, missing, "operations of docs/openapi.yaml no answer checked")
}

// scenarioForOpenAPI calls every endpoint, including error answers.
func scenarioForOpenAPI(t *testing.T, opc *httpc) {
	opc.tenantWithToken("acme", map[string]any{"labels": map[string]string{"a": "b"}}, false)
	tok := opc.doJSON("POST", "/v1/tenants/acme/tokens", map[string]any{"ttl_seconds": 60}).json(t)
	c := opc.with(tok["token"].(string))
	opc.must(http.StatusOK, "GET", "/v1/tenants", nil)
	opc.must(http.StatusOK, "GET", "/v1/tenants/acme", nil)
	opc.must(http.StatusNotFound, "GET", "/v1/tenants/nosuch", nil)
	opc.must(http.StatusBadRequest, "GET", "/v1/tenants?limit=x", nil)
	opc.doJSON("POST", "/v1/tenants", map[string]any{"name": "acme"})
	opc.doJSON("POST", "/v1/tenants", map[string]any{"name": "Bad!"})
	opc.doJSON("PATCH", "/v1/tenants/acme", map[string]any{"labels": map[string]string{}})
	opc.doJSON("PATCH", "/v1/tenants/nosuch", map[string]any{"state": "active"})
	opc.must(http.StatusOK, "GET", "/v1/tenants/acme/tokens", nil)
	opc.must(http.StatusNotFound, "DELETE", "/v1/tenants/acme/tokens/nosuch", nil)
	c.must(http.StatusOK, "PUT", keyPath("acme", []byte("k")), []byte("v"))
	c.must(http.StatusOK, "PUT", keyPath("acme", []byte{0xff}), []byte{0})
	c.must(http.StatusOK, "GET", keyPath("acme", []byte("k")), nil)
	c.must(http.StatusNotFound, "GET", keyPath("acme", []byte("nope")), nil)
	c.must(http.StatusRequestEntityTooLarge, "PUT", keyPath("acme", []byte("k")), make([]byte, 100_001))
	c.must(http.StatusForbidden, "GET", keyPath("other", []byte("k")), nil)
	c.with("bad").must(http.StatusUnauthorized, "GET", keyPath("acme", []byte("k")), nil)
	c.must(http.StatusOK, "GET", "/v1/tenants/acme/keys?limit=1", nil)
	c.must(http.StatusOK, "GET", "/v1/tenants/acme/keys?reverse=true&stale=true", nil)
	c.must(http.StatusBadRequest, "GET", "/v1/tenants/acme/keys?start=b&end=a", nil)
	c.must(http.StatusRequestURITooLong, "GET", "/v1/tenants/acme/keys?prefix="+strings.Repeat("p", 101<<10), nil)
	c.must(http.StatusOK, "DELETE", keyPath("acme", []byte("k")), nil)
	c.must(http.StatusBadRequest, "DELETE", "/v1/tenants/acme/keys", nil)
	c.must(http.StatusOK, "DELETE", "/v1/tenants/acme/keys?prefix=x", nil)
	c.doJSON("POST", "/v1/tenants/acme/txn", map[string]any{
		"reads":      []any{map[string]any{"key": "k"}, map[string]any{"start": ""}},
		"conditions": []any{map[string]any{"key": "k", "absent": true}},
		"mutations":  []any{map[string]any{"op": "set", "key": "k", "value": "w"}, map[string]any{"op": "add", "key": "n", "delta": 1}},
	})
	c.doJSON("POST", "/v1/tenants/acme/txn", map[string]any{"conditions": []any{map[string]any{"key": "k", "absent": true}}})
	c.do("POST", "/v1/tenants/acme/txn", []byte("{"))
	c.must(http.StatusMethodNotAllowed, "PUT", "/v1/tenants/acme/txn", nil)
	c.must(http.StatusNotFound, "GET", "/v1/elsewhere", nil)
	// The watch: its status and content type, and one event's data.
	w, refused := c.openWatch("prefix=k&from=1")
	require.Nil(t, refused)
	*opc.rec = append(*opc.rec, exchange{method: "GET", path: "/v1/tenants/acme/watch",
		answer: &httpAnswer{status: w.resp.StatusCode, header: w.resp.Header, body: []byte(w.next(t).data)}})
	w.close()
	_, refused = c.openWatch("prefix=k&from=99999")
	*opc.rec = append(*opc.rec, exchange{method: "GET", path: "/v1/tenants/acme/watch", answer: refused})
	rl := opc.with(opc.tenantWithToken("slow", map[string]any{"limits": map[string]any{"ops_per_sec": 1, "burst": 1}}, false))
	for range 5 {
		rl.do("GET", keyPath("slow", []byte("k")), nil)
	}
	opc.must(http.StatusNoContent, "DELETE", "/v1/tenants/acme/tokens/"+tok["id"].(string), nil)
	opc.must(http.StatusNoContent, "DELETE", "/v1/tenants/acme", nil)
	opc.must(http.StatusNotFound, "DELETE", "/v1/tenants/acme", nil)
}

// openAPI reads the parsed document.
type openAPI struct{ doc map[string]any }

func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }

// resolve follows a $ref ("#/components/...").
func (o *openAPI) resolve(t testing.TB, m map[string]any) map[string]any {
	for m != nil {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		cur := any(o.doc)
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			cur = obj(cur)[part]
		}
		require.NotNil(t, cur, "unresolved %s", ref)
		m = obj(cur)
	}
	return m
}

func (o *openAPI) operationIDs() []string {
	var ids []string
	for _, item := range obj(o.doc["paths"]) {
		for _, opn := range obj(item) {
			if id, ok := obj(opn)["operationId"].(string); ok {
				ids = append(ids, id)
			}
		}
	}
	sort.Strings(ids)
	return ids
}

// operation finds the document's operation for a request: the path
// template whose segments match (a {param} matches one segment, {key}
// the rest of the path).
func (o *openAPI) operation(t testing.TB, method, path string) (string, map[string]any) {
	for tmpl, item := range obj(o.doc["paths"]) {
		if !templateMatches(tmpl, path) {
			continue
		}
		opn := obj(obj(item)[strings.ToLower(method)])
		if opn == nil {
			return "", nil
		}
		return opn["operationId"].(string), opn
	}
	return "", nil
}

func templateMatches(tmpl, path string) bool {
	ts, ps := strings.Split(tmpl, "/"), strings.Split(path, "/")
	for i, seg := range ts {
		if i >= len(ps) {
			return false
		}
		if seg == "{key}" {
			return i == len(ts)-1 // the rest of the path, whatever it holds
		}
		if strings.HasPrefix(seg, "{") {
			if ps[i] == "" {
				return false
			}
			continue
		}
		if seg != ps[i] {
			return false
		}
	}
	return len(ts) == len(ps)
}

func (o *openAPI) checkAnswer(t testing.TB, id string, opn map[string]any, ex exchange) {
	t.Helper()
	a := ex.answer
	where := fmt.Sprintf("%s (%s %s) %d", id, ex.method, ex.path, a.status)
	resp := o.resolve(t, obj(obj(opn["responses"])[fmt.Sprint(a.status)]))
	require.NotNil(t, resp, "%s: status not in docs/openapi.yaml; body %s", where, a.body)
	for name, h := range obj(resp["headers"]) {
		_ = h
		if name == "Retry-After" && a.status != http.StatusTooManyRequests && a.status != http.StatusServiceUnavailable {
			continue
		}
		require.NotEmpty(t, a.header.Get(name), "%s: header %s", where, name)
	}
	content := obj(resp["content"])
	if content == nil {
		require.Empty(t, a.body, "%s: a body where none is documented", where)
		return
	}
	ct, _, err := mime.ParseMediaType(a.header.Get("Content-Type"))
	require.NoError(t, err, where)
	media := obj(content[ct])
	require.NotNil(t, media, "%s: content type %s not documented", where, ct)
	schema := o.resolve(t, obj(media["schema"]))
	switch ct {
	case "application/json":
		var v any
		require.NoError(t, json.Unmarshal(a.body, &v), "%s: %s", where, a.body)
		require.NoError(t, o.validate(t, schema, v, "body"), "%s: %s", where, a.body)
	case "text/event-stream":
		var v any
		require.NoError(t, json.Unmarshal(a.body, &v), "%s: event data %s", where, a.body)
		require.NoError(t, o.validate(t, o.resolve(t, obj(media["itemSchema"])), v, "event"), where)
	}
}

// validate checks v (decoded JSON) against a JSON Schema of the subset
// the document uses: $ref, type, enum, required, properties,
// additionalProperties, items.
func (o *openAPI) validate(t testing.TB, schema map[string]any, v any, at string) error {
	schema = o.resolve(t, schema)
	if schema == nil {
		return nil
	}
	if enum, ok := schema["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			found = found || fmt.Sprint(e) == fmt.Sprint(v)
		}
		if !found {
			return fmt.Errorf("%s: %v not in %v", at, v, enum)
		}
	}
	switch typ, _ := schema["type"].(string); typ {
	case "string":
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%s: %v is not a string", at, v)
		}
		if schema["format"] == "byte" {
			if _, err := base64.StdEncoding.DecodeString(v.(string)); err != nil {
				return fmt.Errorf("%s: %v", at, err)
			}
		}
	case "integer":
		f, ok := v.(float64)
		if !ok || f != math.Trunc(f) {
			return fmt.Errorf("%s: %v is not an integer", at, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: %v is not a boolean", at, v)
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: %v is not an array", at, v)
		}
		for i, e := range arr {
			if err := o.validate(t, obj(schema["items"]), e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %v is not an object", at, v)
		}
		for _, r := range asList(schema["required"]) {
			if _, ok := m[r]; !ok {
				return fmt.Errorf("%s: required field %q missing", at, r)
			}
		}
		props := obj(schema["properties"])
		for k, fv := range m {
			ps, known := props[k]
			switch {
			case known:
				if err := o.validate(t, obj(ps), fv, at+"."+k); err != nil {
					return err
				}
			case schema["additionalProperties"] == false:
				return fmt.Errorf("%s: field %q not in the schema", at, k)
			case obj(schema["additionalProperties"]) != nil:
				if err := o.validate(t, obj(schema["additionalProperties"]), fv, at+"."+k); err != nil {
					return err
				}
			case props != nil:
				return fmt.Errorf("%s: field %q not documented", at, k)
			}
		}
	}
	return nil
}

func asList(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, e := range l {
		out = append(out, e.(string))
	}
	return out
}
