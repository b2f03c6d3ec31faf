package proof

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/server"
)

// TestIsolationAttacksHTTP replays the isolation attacks over the HTTP
// API (server/httpapi*.go), on three nodes, each attack sent to any of
// them (so followers forward it): tenant B, with its own token, tries
// every endpoint and method against tenant A, the tenant that does not
// exist, and the boundaries of its own span, with every name variant, in
// the path and in X-Tenant-ID, with boundary keys, ranges, cursors and
// transaction bodies. Whatever B does:
//
//   - no answer (body or header) carries A's values or key names;
//   - A's data, record and usage and the tenant and token lists are
//     unchanged;
//   - naming A gets the same status and byte for byte the same body as
//     naming a tenant that does not exist;
//   - nothing is an internal error.
//
// Timing is the same by construction, not measured here: for a tenant
// token the tenant named is compared with the token's own name, and
// refused, before any lookup of the name (resolveTenant), for A and for a
// missing tenant alike.
func TestIsolationAttacksHTTP(t *testing.T) {
	seed := testSeed(t)
	c := newClusterWith(t, 3, &cluster{tuning: testRaft, logger: testLogger,
		configure: func(nd *testNode, cfg *server.Config) { cfg.HTTPAddr = "127.0.0.1:0" }})
	f := newIsolationFixtureOn(t, c)
	rng := rand.New(rand.NewPCG(seed, 3))
	t.Logf("http isolation: seed %d, A is tenant %d, B is tenant %d", seed, f.aID, f.bID)
	before := f.snapshotA(t, false)

	var bases []string
	for _, nd := range c.running() {
		bases = append(bases, "http://"+nd.server().HTTPAddr())
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	type answer struct {
		status int
		body   []byte
	}
	send := func(method, path string, body []byte, hdr map[string]string) answer {
		t.Helper()
		req, err := http.NewRequest(method, bases[rng.IntN(len(bases))]+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+f.bToken)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		f.attempts.Add(1)
		totals.Attacks.Add(1)
		var all bytes.Buffer
		all.Write(b)
		for k, vs := range resp.Header {
			fmt.Fprintf(&all, "%s: %s\n", k, strings.Join(vs, ","))
		}
		if bytes.Contains(all.Bytes(), []byte(f.aSecret)) || bytes.Contains(all.Bytes(), []byte(f.aKeyName)) {
			totals.Violations.Add(1)
			t.Errorf("ISOLATION LEAK over HTTP: %s %s returned A's data", method, path)
		}
		if resp.StatusCode == http.StatusInternalServerError {
			t.Errorf("%s %s: internal error: %s", method, path, b)
		}
		return answer{resp.StatusCode, b}
	}
	esc := func(k []byte) string {
		var s strings.Builder
		for _, c := range k {
			fmt.Fprintf(&s, "%%%02X", c)
		}
		return s.String()
	}
	aPrefix := binary.BigEndian.AppendUint64(nil, f.aID)
	bPrefix := binary.BigEndian.AppendUint64(nil, f.bID)
	keys := [][]byte{[]byte("a-key-1"), []byte(f.aKeyName[:5]), {0x00}, {0xFF}, bytes.Repeat([]byte{0xFF}, 16), aPrefix, bPrefix,
		append(append([]byte(nil), aPrefix...), "a-key-1"...), {0xFF, 0x00}, []byte("../" + nameA + "/keys/a-key-1"), []byte("shared-name")}
	var queries []string
	for _, k := range keys {
		e := url.QueryEscape(string(k))
		queries = append(queries, "prefix="+e, "start="+e, "end="+e, "start=&end="+e, "start="+e+"&reverse=true&stale=true",
			"cursor="+base64.RawURLEncoding.EncodeToString(k), "cursor="+base64.RawURLEncoding.EncodeToString(k)+"&reverse=true", "key="+e)
	}
	queries = append(queries, "", "limit=1000", "stale=true", "from=1", "prefix=&limit=1",
		"end=a&cursor="+base64.RawURLEncoding.EncodeToString([]byte("z")), // past the end: an empty page, still refused
		"prefix=a&reverse=true&cursor=AA")
	txnBodies := []string{`{"reads":[{"start":""}]}`, `{"reads":[{"key":"a-key-1"},{"prefix":"a"}]}`,
		`{"reads":[{"start":"` + base64.StdEncoding.EncodeToString(aPrefix) + `","encoding":"base64"}]}`,
		`{"conditions":[{"key":"a-key-1","value":"B-OWN"}],"mutations":[{"op":"set","key":"a-key-1","value":"pwn"}]}`,
		`{"mutations":[{"op":"delete_range","start":""},{"op":"add","key":"n","delta":1}]}`,
		`{"mutations":[{"op":"delete_range","prefix":"` + base64.StdEncoding.EncodeToString(aPrefix) + `","encoding":"base64"}]}`}

	// The same request naming A, and a tenant that does not exist: the
	// same answer.
	names := []string{nameA, nameC, "ALPHA", "%61lpha", nameA + "%2F", nameA + ".", "0", url.PathEscape(string(aPrefix))}
	type endpoint struct {
		method, sub string
		body        []byte
	}
	endpoints := []endpoint{{"GET", "", nil}, {"PATCH", "", []byte(`{"state":"locked"}`)}, {"DELETE", "", nil},
		{"GET", "/tokens", nil}, {"POST", "/tokens", []byte(`{}`)}, {"DELETE", "/tokens/x", nil},
		{"GET", "/keys", nil}, {"DELETE", "/keys", nil}, {"GET", "/watch", nil}}
	for _, k := range keys {
		endpoints = append(endpoints, endpoint{"GET", "/keys/" + esc(k), nil}, endpoint{"PUT", "/keys/" + esc(k), []byte("pwn")},
			endpoint{"DELETE", "/keys/" + esc(k), nil})
	}
	for _, b := range txnBodies {
		endpoints = append(endpoints, endpoint{"POST", "/txn", []byte(b)})
	}
	compare := func(what string, a, g answer) {
		t.Helper()
		if a.status != g.status || !bytes.Equal(a.body, g.body) {
			totals.Violations.Add(1)
			t.Errorf("ISOLATION: %s tells A from a missing tenant: %d %q vs %d %q", what, a.status, a.body, g.status, g.body)
		}
	}
	for _, ep := range endpoints {
		for _, name := range names {
			q := pick(rng, queries)
			if ep.sub == "/watch" {
				q = "prefix=&from=1" // answered at once: refused
			}
			path := "/v1/tenants/" + name + ep.sub + "?" + q
			ghost := "/v1/tenants/" + nameGhost + ep.sub + "?" + q
			a := send(ep.method, path, ep.body, nil)
			if a.status < 400 {
				totals.Violations.Add(1)
				t.Errorf("ISOLATION: B's %s %s was served: %d %s", ep.method, path, a.status, a.body)
			}
			if name == nameA || name == nameC {
				compare(ep.method+" "+path, a, send(ep.method, ghost, ep.body, nil))
			}
			// B's own path with X-Tenant-ID naming A, and naming nobody.
			own := "/v1/tenants/" + nameB + ep.sub + "?" + q
			compare("X-Tenant-ID "+name+" on "+own, send(ep.method, own, ep.body, map[string]string{"X-Tenant-ID": name}),
				send(ep.method, own, ep.body, map[string]string{"X-Tenant-ID": nameGhost}))
		}
	}
	// The operator's collection endpoints: refused for B.
	for _, ep := range []endpoint{{"GET", "/v1/tenants", nil}, {"POST", "/v1/tenants", []byte(`{"name":"b-made"}`)}} {
		if a := send(ep.method, ep.sub, ep.body, nil); a.status != http.StatusForbidden {
			t.Errorf("B's %s %s: %d %s", ep.method, ep.sub, a.status, a.body)
		}
	}
	// B's own tenant, every boundary key, range and cursor, forward and
	// back, stale or not, and transactions: only B's data comes back (send
	// checks), and A is untouched (below).
	for _, q := range queries {
		send("GET", "/v1/tenants/"+nameB+"/keys?"+q, nil, nil)
	}
	for _, k := range keys {
		send("GET", "/v1/tenants/"+nameB+"/keys/"+esc(k)+"?stale=true", nil, nil)
		send("PUT", "/v1/tenants/"+nameB+"/keys/"+esc(k), []byte("B-OWN"), nil)
	}
	for _, b := range txnBodies {
		send("POST", "/v1/tenants/"+nameB+"/txn", []byte(b), nil)
	}
	for range 300 {
		q := pick(rng, queries)
		switch rng.IntN(4) {
		case 0:
			send("GET", "/v1/tenants/"+nameB+"/keys?"+q+"&limit="+fmt.Sprint(rng.IntN(1001)), nil, nil)
		case 1:
			send("DELETE", "/v1/tenants/"+nameB+"/keys?"+q, nil, nil)
		case 2:
			send("POST", "/v1/tenants/"+nameB+"/txn", []byte(pick(rng, txnBodies)), nil)
		default:
			send("GET", "/v1/tenants/"+nameB+"/keys/"+esc(pick(rng, keys)), nil, nil)
		}
	}
	compareA(t, "B's attacks over HTTP", before, f.snapshotA(t, true))
}
