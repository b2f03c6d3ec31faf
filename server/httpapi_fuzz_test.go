package server

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Fuzz targets of the HTTP API's decoders: the path, the query and the
// bodies come from anyone who can reach the HTTP address.

func escapeAll(k []byte) string {
	var b strings.Builder
	for _, c := range k {
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func FuzzHTTPRoute(f *testing.F) {
	for _, s := range []string{"/v1/tenants", "/v1/tenants/", "/v1/tenants/acme", "/v1/tenants/acme/keys",
		"/v1/tenants/acme/keys/a%2Fb", "/v1/tenants/acme/keys/%ZZ", "/v1/tenants//keys/x", "/v1/tenants/acme/tokens/id",
		"/v1/tenants/acme/txn", "/v1/tenants/acme/watch", "/v1/other", "/v1/tenants/a/keys/..%2F..", "/v1/tenants/%61cme/keys/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt, err := parseRoute(path)
		if err != nil {
			return
		}
		if rt.kind == 0 || (rt.kind != routeTenants && rt.tenant == "") {
			t.Fatalf("%q: route %+v", path, rt)
		}
		if rt.kind == routeKey {
			// Any key, escaped byte by byte, parses back to itself.
			back, err := parseRoute("/v1/tenants/" + url.PathEscape(rt.tenant) + "/keys/" + escapeAll(rt.key))
			if err != nil || back.kind != routeKey || !bytes.Equal(back.key, rt.key) || back.tenant != rt.tenant {
				t.Fatalf("%q: key %q does not round-trip: %+v %v", path, rt.key, back, err)
			}
		}
	})
}

func FuzzHTTPQuery(f *testing.F) {
	for _, s := range []string{"", "prefix=a", "start=a&end=b", "prefix=a&start=b", "limit=5&reverse=true&cursor=YQ",
		"stale=1", "limit=-1", "limit=99999999999999999999", "cursor=%%%", "start=%FF%00&end=", "key=k&from=3"} {
		f.Add(s, "")
	}
	f.Add("from=0", "7")
	f.Fuzz(func(t *testing.T, raw, lastID string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		start, end, _, rerr := keyRange(q)
		pq, err := parsePageQuery(q)
		if err == nil {
			if rerr != nil {
				t.Fatalf("%q: page accepted a range keyRange refused", raw)
			}
			if pq.limit < 1 || pq.limit > maxKeysLimit {
				t.Fatalf("%q: limit %d", raw, pq.limit)
			}
			// A cursor narrows the range, never widens it.
			if string(pq.start) < string(start) {
				t.Fatalf("%q: start %q before %q", raw, pq.start, start)
			}
			if len(end) > 0 && (len(pq.end) == 0 || string(pq.end) > string(end)) {
				t.Fatalf("%q: end %q after %q", raw, pq.end, end)
			}
		}
		r := &http.Request{Header: http.Header{}}
		if lastID != "" {
			r.Header.Set("Last-Event-ID", lastID)
		}
		_, _, _ = watchStart(r, q)
	})
}

func FuzzHTTPTxnBody(f *testing.F) {
	for _, s := range []string{`{}`, `{"reads":[{"key":"a"},{"prefix":"p","limit":3}]}`,
		`{"conditions":[{"key":"k","absent":true},{"key":"k","version":3},{"key":"aw==","value":"dg==","encoding":"base64"}]}`,
		`{"mutations":[{"op":"set","key":"k","value":"v"},{"op":"delete","key":"k"},{"op":"delete_range","start":"a","end":"b"},{"op":"add","key":"n","delta":-1}]}`,
		`{"mutations":[{"op":"delete_range","prefix":"\u00ff"}]}`, `{"reads":[{"key":"a","start":"b"}]}`, `[`, `{} x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		plan, err := decodeTxn(body)
		if err != nil {
			return
		}
		if len(plan.reads)+len(plan.conds) > maxTxnReads {
			t.Fatalf("%d reads and conditions accepted", len(plan.reads)+len(plan.conds))
		}
		for i := range plan.muts {
			if _, err := txnOp(&plan.muts[i]); err != nil {
				t.Fatalf("mutation %d accepted but refused by the commit's check: %v", i, err)
			}
		}
	})
}

func FuzzHTTPBodyBytes(f *testing.F) {
	for _, s := range []string{"", "text", "\x00", "\xff\xfe", "é", "tab\tnl\n", "\x7f", "<&>"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, enc := encodeBytes(b)
		back, err := decodeBytes(s, enc)
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("%q (%s) does not round-trip: %q %v", b, enc, back, err)
		}
		_, _ = decodeBytes(string(b), encBase64) // never panics
		_ = decodeJSONBody(b, &tenantBody{})
		_ = decodeJSONBody(b, &tokenBody{})
	})
}
