package wire

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// The fast encoder must write exactly what the msgpack library writes.
func TestFastEncoderMatchesLibrary(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	str := func() string {
		switch r.IntN(5) {
		case 0:
			return ""
		case 1:
			return string(bytes.Repeat([]byte("s"), 31+r.IntN(3)))
		case 2:
			return string(bytes.Repeat([]byte("x"), 250+r.IntN(300)))
		case 3:
			return string(bytes.Repeat([]byte("y"), 65530+r.IntN(20)))
		}
		return "tenant-" + string(rune('a'+r.IntN(26)))
	}
	bin := func() []byte {
		switch r.IntN(6) {
		case 0:
			return nil
		case 1:
			return []byte{}
		case 2:
			return bytes.Repeat([]byte{7}, 250+r.IntN(20))
		case 3:
			return bytes.Repeat([]byte{9}, 65530+r.IntN(20))
		}
		return []byte{byte(r.IntN(256)), 0, 0xff}
	}
	num := func() uint64 {
		switch r.IntN(4) {
		case 0:
			return 0
		case 1:
			return uint64(r.IntN(200))
		case 2:
			return r.Uint64()
		}
		return uint64(1 + r.IntN(70000))
	}
	inum := func() int64 {
		if r.IntN(3) == 0 {
			return -int64(num() >> 1)
		}
		return int64(num() >> 1)
	}
	flag := func() bool { return r.IntN(2) == 0 }
	for i := range 800 {
		req := &Request{
			ID: num(), Op: Op(r.IntN(60)), Tenant: str(), Key: bin(), Value: bin(), End: bin(),
			Limit: int(inum()), Reverse: flag(), Stale: flag(), Cursor: str(), Version: int(inum()),
			Token: str(), Name: str(), NewName: str(), State: str(), After: str(), ReadOnly: flag(),
			TTL: time.Duration(inum()), Addr: str(), Addr2: str(), Addr3: str(), ReadVersion: num(),
			TenantID: num(), TxnID: bin(), Expect: bin(), Flags: uint8(num()), Wait: time.Duration(inum()),
		}
		if r.IntN(4) == 0 { // a sparse one, as most requests are
			req = &Request{ID: num(), Op: OpGet, Tenant: str(), Key: bin()}
		}
		want, err := appendMsg(nil, req)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendRequestFast([]byte("prefix"), req); !bytes.Equal(got[6:], want) {
			t.Fatalf("request %d: %s", i, firstDiff(got[6:], want))
		}
		resp := &Response{
			ID: num(), Code: Code(r.IntN(40)), Msg: str(), Value: bin(), More: flag(), Leader: str(),
			RetryAfter: time.Duration(inum()), Version: int(inum()), NodeID: str(), Operator: flag(), IdleTimeout: time.Duration(inum()),
			Token: str(), TokenID: str(), Next: str(), DataVersion: num(), TenantID: num(), Swapped: flag(),
			RateLimit: num(), RateBurst: num(),
		}
		switch r.IntN(4) {
		case 0:
			for range r.IntN(40) {
				resp.KVs = append(resp.KVs, KV{Key: bin(), Value: bin(), Version: num()})
			}
		case 1:
			resp.KVs = []KV{}
		case 2:
			resp = &Response{ID: num(), Value: bin(), DataVersion: num(), TenantID: num()}
		}
		want, err = appendMsg(nil, resp)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendResponseFast(nil, resp); !bytes.Equal(got, want) {
			t.Fatalf("response %d: %s", i, firstDiff(got, want))
		}
		var back Response
		if err := DecodeResponse(want, &back); err != nil {
			t.Fatal(err)
		}
	}
}

// A field added to Request or Response must be added to the fast encoder
// too (or to fastRequest/fastResponse's list of fields it leaves to the
// library), or it would be silently dropped on the data path.
func TestFastEncoderKnowsEveryField(t *testing.T) {
	if n := reflect.TypeOf(Request{}).NumField(); n != 30 {
		t.Errorf("Request has %d fields; appendRequestFast writes 27 and leaves Muts, Config and Reads to the library: update it", n)
	}
	if n := reflect.TypeOf(Response{}).NumField(); n != 29 {
		t.Errorf("Response has %d fields; appendResponseFast writes 20 and leaves Tenant, Tenants, Tokens, Cluster, Events, MaxFormat, Snapshot, Audit and Verdict to the library: update it", n)
	}
}

// firstDiff describes where two encodings part, without printing them whole.
func firstDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	lo := max(i-8, 0)
	return fmt.Sprintf("fast encoding differs at byte %d of %d (want %d): got ...%x... want ...%x...",
		i, len(got), len(want), got[lo:min(i+8, len(got))], want[lo:min(i+8, len(want))])
}

func BenchmarkAppendResponse(b *testing.B) {
	resp := &Response{ID: 12345, Value: bytes.Repeat([]byte{1}, 128), DataVersion: 99, TenantID: 7}
	b.Run("library", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf, _ = appendMsg(buf[:0], resp)
		}
	})
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf = appendResponseFast(buf[:0], resp)
		}
	})
}
