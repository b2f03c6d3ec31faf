package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func u64(v uint64) *uint64 { return &v }

// fullRequest and fullResponse set every field, so that a field whose tag is
// lost or duplicated fails the round trip.
func fullRequest() *Request {
	return &Request{
		ID: 1<<40 + 7, Op: OpScan, Tenant: "acme",
		Key: []byte("k\x00\xff"), Value: []byte("v"), End: []byte("z"), Limit: 1000, Reverse: true, Stale: true,
		Version: ProtocolVersion, Token: "tkv_0123_secret",
		Name: "beta", State: "read-only", After: "alpha", ReadOnly: true, TTL: 90 * time.Minute,
		Addr: "10.0.0.1:7000", Addr2: "10.0.0.1:7400", Addr3: "10.0.0.1:8080",
		Config: &TenantConfig{MaxBytes: u64(1 << 30), MaxKeys: u64(5), OpsPerSec: u64(100), Burst: u64(200),
			MaxConcurrent: u64(8), MaxWatches: u64(0), Labels: map[string]string{"team": "x", "env": "prod"},
			ReplaceLabels: true},
	}
}

// TestLabelsUpdate checks what an update does to labels once decoded: an
// empty map does not survive the wire, so clearing labels rests on
// ReplaceLabels.
func TestLabelsUpdate(t *testing.T) {
	tests := []struct {
		name string
		cfg  *TenantConfig
		want map[string]string // nil: unchanged
	}{
		{"no config", nil, nil},
		{"no labels", &TenantConfig{MaxKeys: u64(1)}, nil},
		{"replace", &TenantConfig{Labels: map[string]string{"a": "1"}, ReplaceLabels: true}, map[string]string{"a": "1"}},
		{"replace, without the flag", &TenantConfig{Labels: map[string]string{"a": "1"}}, map[string]string{"a": "1"}},
		{"clear", &TenantConfig{Labels: map[string]string{}, ReplaceLabels: true}, map[string]string{}},
		{"empty map without the flag", &TenantConfig{Labels: map[string]string{}}, nil},
	}
	for _, tt := range tests {
		frame, err := AppendRequestFrame(nil, &Request{Op: OpUpdateTenant, Name: "acme", Config: tt.cfg})
		if err != nil {
			t.Fatal(err)
		}
		var got Request
		if err := DecodeRequest(frame[4:], &got); err != nil {
			t.Fatal(err)
		}
		labels, ok := got.Config.LabelsUpdate()
		if ok != (tt.want != nil) || !reflect.DeepEqual(labels, tt.want) {
			t.Errorf("%s: LabelsUpdate() = %#v, %v; want %#v", tt.name, labels, ok, tt.want)
		}
	}
}

func fullResponse() *Response {
	created := time.Unix(1700000000, 123456789)
	ti := TenantInfo{ID: 42, Name: "acme", State: "active", CreatedAt: created,
		Limits: Limits{MaxBytes: 1, MaxKeys: 2, OpsPerSec: 3, Burst: 4, MaxConcurrent: 5, MaxWatches: 6},
		Labels: map[string]string{"a": "b"},
		Usage:  Usage{LogicalBytes: 1, Keys: 2, DiskBytes: 3, Reads: 4, Writes: 5, BytesRead: 6, BytesWritten: 7, Throttled: 8, Errors: 9}}
	return &Response{
		ID: 9, Code: CodeRateLimited, Msg: "slow down",
		Value: []byte("value"), KVs: []KV{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: []byte{}}}, More: true,
		Leader: "10.0.0.2:7400", RetryAfter: 250 * time.Millisecond,
		Version: ProtocolVersion, NodeID: "n1", Operator: true,
		Tenant: &ti, Tenants: []TenantInfo{ti, {ID: 43, Name: "beta", CreatedAt: created}},
		Token: "secret", TokenID: "0123",
		Tokens: []TokenInfo{{ID: "0123", Tenant: "acme", ReadOnly: true, CreatedAt: created, ExpiresAt: created.Add(time.Hour)}},
		Cluster: &ClusterStatus{NodeID: "n1", LeaderID: "n2", Term: 3, AppliedIndex: 10, CommitIndex: 11,
			Members: []Member{{ID: "n1", RaftAddr: "r", ClientAddr: "c", HTTPAddr: "h", Suffrage: "voter", Leader: true}}},
		Next: "beta",
	}
}

// normalizeTimes makes decoded times comparable with reflect.DeepEqual:
// msgpack restores the instant, not the location.
func normalizeTimes(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			normalizeTimes(v.Elem())
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			normalizeTimes(v.Index(i))
		}
	case reflect.Struct:
		if t, ok := v.Interface().(time.Time); ok {
			if v.CanSet() {
				v.Set(reflect.ValueOf(t.UTC()))
			}
			return
		}
		for i := 0; i < v.NumField(); i++ {
			normalizeTimes(v.Field(i))
		}
	}
}

func TestRequestRoundTrip(t *testing.T) {
	for _, want := range []*Request{fullRequest(), {ID: 1, Op: OpPing}, {Op: OpHello, Token: "t", Version: 1}} {
		frame, err := AppendRequestFrame([]byte("prefix"), want)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(frame, []byte("prefix")) {
			t.Fatal("AppendRequestFrame lost dst")
		}
		body, err := NewFrameReader(bytes.NewReader(frame[len("prefix"):])).Read(DefaultMaxFrame)
		if err != nil {
			t.Fatal(err)
		}
		var got Request
		if err := DecodeRequest(body, &got); err != nil {
			t.Fatal(err)
		}
		normalizeTimes(reflect.ValueOf(&got))
		if !reflect.DeepEqual(&got, want) {
			t.Errorf("round trip:\ngot  %+v\nwant %+v", got, *want)
		}
		// Decoded slices do not alias the frame.
		for i := range body {
			body[i] = 0xAA
		}
		normalizeTimes(reflect.ValueOf(&got))
		if !reflect.DeepEqual(&got, want) {
			t.Errorf("decoded request aliases its input")
		}
	}
}

func TestResponseRoundTrip(t *testing.T) {
	for _, want := range []*Response{fullResponse(), {ID: 1}, {ID: 2, Code: CodeNotFound}} {
		normalizeTimes(reflect.ValueOf(want))
		frame, err := AppendResponseFrame(nil, want)
		if err != nil {
			t.Fatal(err)
		}
		body, err := NewFrameReader(bytes.NewReader(frame)).Read(DefaultMaxFrame)
		if err != nil {
			t.Fatal(err)
		}
		var got Response
		got.Msg = "stale" // DecodeResponse resets its target
		if err := DecodeResponse(body, &got); err != nil {
			t.Fatal(err)
		}
		for i := range body {
			body[i] = 0xAA
		}
		normalizeTimes(reflect.ValueOf(&got))
		if !reflect.DeepEqual(&got, want) {
			t.Errorf("round trip:\ngot  %+v\nwant %+v", got, *want)
		}
	}
}

func TestEmptyFieldsCostNothing(t *testing.T) {
	b, err := AppendRequest(nil, &Request{ID: 1, Op: OpPing})
	if err != nil {
		t.Fatal(err)
	}
	// A map of two entries, {"i": 1, "o": 2}: empty fields are left out.
	if b[0] != 0x82 {
		t.Errorf("ping encodes to a map of %d entries: %x", b[0]&0x0f, b)
	}
}

func TestFrameReader(t *testing.T) {
	var stream []byte
	var err error
	bodies := [][]byte{{}, []byte("one"), bytes.Repeat([]byte("x"), 2<<20), []byte("after a big one")}
	for _, b := range bodies {
		start := len(stream)
		stream = append(AppendFrameHeader(stream), b...)
		if err := FinishFrame(stream, start); err != nil {
			t.Fatal(err)
		}
	}
	fr := NewFrameReader(bytes.NewReader(stream))
	for i, want := range bodies {
		got, err := fr.Read(4 << 20)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("frame %d: %d bytes, want %d", i, len(got), len(want))
		}
	}
	if cap(fr.buf) > 1<<20 {
		t.Errorf("reader keeps a %d-byte buffer after a small frame", cap(fr.buf))
	}
	if _, err = fr.Read(4 << 20); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}

	// Cut inside a header, inside a body.
	for _, cut := range []int{2, HeaderLen + 1} {
		frame := append(AppendFrameHeader(nil), "body"...)
		_ = FinishFrame(frame, 0)
		_, err := NewFrameReader(bytes.NewReader(frame[:cut])).Read(100)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut at %d: %v, want io.ErrUnexpectedEOF", cut, err)
		}
	}

	// Over the limit: refused from the header alone.
	hdr := binary.BigEndian.AppendUint32(nil, 0xFFFF_FFFF)
	_, err = NewFrameReader(bytes.NewReader(hdr)).Read(DefaultMaxFrame)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("huge header: %v, want ErrFrameTooLarge", err)
	}
	frame := append(binary.BigEndian.AppendUint32(nil, 11), "eleven byte"...)
	if _, err := NewFrameReader(bytes.NewReader(frame)).Read(10); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("11 bytes with limit 10: %v", err)
	}
	if b, err := NewFrameReader(bytes.NewReader(frame)).Read(11); err != nil || string(b) != "eleven byte" {
		t.Fatalf("11 bytes with limit 11: %q, %v", b, err)
	}
}

func TestFinishFrameBadStart(t *testing.T) {
	if err := FinishFrame([]byte{1, 2}, 0); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("FinishFrame without room for a header: %v", err)
	}
}

func TestDecodeGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, {0xc1}, []byte("not msgpack"), {0x81, 0xa1, 'i'}, {0x92, 0x01}} {
		var req Request
		if err := DecodeRequest(b, &req); err == nil || !strings.HasPrefix(err.Error(), "wire: decode request") {
			t.Errorf("DecodeRequest(%x) = %v", b, err)
		}
		var resp Response
		if err := DecodeResponse(b, &resp); err == nil || !strings.HasPrefix(err.Error(), "wire: decode response") {
			t.Errorf("DecodeResponse(%x) = %v", b, err)
		}
	}
}

func TestCodesAndOps(t *testing.T) {
	for c := CodeOK; c <= CodeInvalidArgument; c++ {
		if strings.HasPrefix(c.String(), "code(") {
			t.Errorf("code %d has no name", c)
		}
	}
	if got := Code(999).String(); got != "code(999)" {
		t.Errorf("unknown code: %q", got)
	}
	for _, op := range []Op{OpHello, OpPing, OpGet, OpSet, OpDelete, OpDeleteRange, OpScan, OpCreateTenant,
		OpDeleteTenant, OpListTenants, OpGetTenant, OpUpdateTenant, OpNewToken, OpListTokens, OpRevokeToken,
		OpClusterStatus, OpClusterRemove, OpClusterJoin, OpClusterAdd, OpClusterPromote, OpClusterTransferLeader} {
		if !op.Known() || strings.HasPrefix(op.String(), "op(") {
			t.Errorf("op %d is not known", op)
		}
	}
	if Op(0).Known() || Op(200).Known() || Op(200).String() != "op(200)" {
		t.Error("unknown ops are known")
	}
}

// FuzzReadFrame feeds arbitrary streams to a FrameReader: it must never
// panic, never return a body over the limit, and return exactly the bodies
// the headers announce.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{}, uint16(100))
	f.Add([]byte{0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 0}, uint16(3))
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF}, uint16(100))
	f.Add([]byte{0, 0, 0, 5, 'a'}, uint16(100))
	f.Fuzz(func(t *testing.T, stream []byte, max uint16) {
		fr := NewFrameReader(bytes.NewReader(stream))
		off := 0
		for {
			body, err := fr.Read(int(max))
			if err != nil {
				if err == io.EOF && off != len(stream) {
					t.Fatalf("io.EOF at offset %d of %d", off, len(stream))
				}
				return
			}
			if len(body) > int(max) {
				t.Fatalf("body of %d bytes over limit %d", len(body), max)
			}
			n := int(binary.BigEndian.Uint32(stream[off:]))
			if n != len(body) || !bytes.Equal(body, stream[off+HeaderLen:off+HeaderLen+n]) {
				t.Fatalf("frame at %d: got %d bytes, header says %d", off, len(body), n)
			}
			off += HeaderLen + n
		}
	})
}

// hostileSeeds start the decoder fuzzers from malformed bodies.
var hostileSeeds = [][]byte{
	{0x80}, {0xc1}, {0x81, 0xa2, 'k', 'v', 0xdd, 0xff, 0xff, 0xff, 0xff},
	{0x81, 0xa1, 'v', 0xc6, 0xff, 0xff, 0xff, 0xff}, {0x81, 0xa1, 'c', 0xc0},
	{0x81, 0xa2, 't', 's', 0x91, 0x81, 0xa1, 'c', 0xc0}, {0x81, 0xa2, 'z', 'z', 0x91, 0x91, 0x91, 0xc0},
}

// FuzzDecodeRequest decodes arbitrary bodies: no panic, and whatever decodes
// re-encodes to something that decodes to the same request.
func FuzzDecodeRequest(f *testing.F) {
	for _, r := range []*Request{fullRequest(), {ID: 1, Op: OpHello, Version: 1, Token: "t"}, {ID: 2, Op: OpGet, Key: []byte("k")}} {
		b, err := AppendRequest(nil, r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, b := range hostileSeeds {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r1 Request
		if err := DecodeRequest(b, &r1); err != nil {
			return
		}
		e1, err := AppendRequest(nil, &r1)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var r2, r3 Request
		if err := DecodeRequest(e1, &r2); err != nil {
			t.Fatalf("decode of re-encoding: %v", err)
		}
		e2, err := AppendRequest(nil, &r2)
		if err != nil {
			t.Fatal(err)
		}
		if err := DecodeRequest(e2, &r3); err != nil {
			t.Fatal(err)
		}
		normalizeTimes(reflect.ValueOf(&r2))
		normalizeTimes(reflect.ValueOf(&r3))
		if !reflect.DeepEqual(r2, r3) {
			t.Fatalf("unstable round trip:\n%+v\n%+v", r2, r3)
		}
	})
}

// FuzzDecodeResponse is FuzzDecodeRequest for responses, which the client
// decodes from whatever a server (or a man in the middle without TLS) sends.
func FuzzDecodeResponse(f *testing.F) {
	for _, r := range []*Response{fullResponse(), {ID: 1, Version: 1, NodeID: "n"}, {ID: 3, Code: CodeNotLeader, Leader: "x:1"}} {
		b, err := AppendResponse(nil, r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, b := range hostileSeeds {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r1 Response
		if err := DecodeResponse(b, &r1); err != nil {
			return
		}
		e1, err := AppendResponse(nil, &r1)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var r2, r3 Response
		if err := DecodeResponse(e1, &r2); err != nil {
			t.Fatalf("decode of re-encoding: %v", err)
		}
		e2, err := AppendResponse(nil, &r2)
		if err != nil {
			t.Fatal(err)
		}
		if err := DecodeResponse(e2, &r3); err != nil {
			t.Fatal(err)
		}
		normalizeTimes(reflect.ValueOf(&r2))
		normalizeTimes(reflect.ValueOf(&r3))
		if !reflect.DeepEqual(r2, r3) {
			t.Fatalf("unstable round trip:\n%+v\n%+v", r2, r3)
		}
	})
}
