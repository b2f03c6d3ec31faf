package client

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"testing"
	"time"
)

var testHeader = ExportHeader{
	Name: "acme", ID: 7, State: StateReadOnly,
	CreatedAt:  time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	ExportedAt: time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC),
	Limits:     Limits{MaxBytes: 1 << 20, MaxKeys: 100, OpsPerSec: 50, Burst: 10, MaxConcurrent: 4},
	Labels:     map[string]string{"plan": "pro", "team": "x"},
	Keys:       3, LogicalBytes: 42,
}

// encodeExport returns the export file of h and kvs.
func encodeExport(t testing.TB, h *ExportHeader, kvs []KV) []byte {
	t.Helper()
	var buf bytes.Buffer
	ew, err := NewExportWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range kvs {
		if err := ew.Add(kv.Key, kv.Value); err != nil {
			t.Fatal(err)
		}
	}
	if err := ew.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decodeExport reads a whole export file.
func decodeExport(b []byte) (ExportHeader, []KV, error) {
	er, err := NewExportReader(bytes.NewReader(b))
	if err != nil {
		return ExportHeader{}, nil, err
	}
	var kvs []KV
	for {
		k, v, err := er.Next()
		if err == io.EOF {
			return er.Header(), kvs, nil
		}
		if err != nil {
			return ExportHeader{}, nil, err
		}
		kvs = append(kvs, KV{Key: k, Value: v})
	}
}

func testRecords() []KV {
	return []KV{
		{Key: []byte{0}, Value: nil},
		{Key: []byte("a"), Value: []byte("1")},
		{Key: []byte("a\x00"), Value: []byte{0xff, 0, 0x80}},
		{Key: bytes.Repeat([]byte{'k'}, 200), Value: bytes.Repeat([]byte{'v'}, 300)},
		{Key: []byte{0xff, 0xff}, Value: []byte("last")},
	}
}

func TestExportRoundTrip(t *testing.T) {
	for _, kvs := range [][]KV{nil, testRecords(), {{Key: make([]byte, MaxKeySize), Value: make([]byte, MaxValueSize)}}} {
		b := encodeExport(t, &testHeader, kvs)
		h, got, err := decodeExport(b)
		if err != nil {
			t.Fatalf("%d records: %v", len(kvs), err)
		}
		if h.Name != testHeader.Name || h.ID != testHeader.ID || h.State != testHeader.State ||
			!h.CreatedAt.Equal(testHeader.CreatedAt) || !h.ExportedAt.Equal(testHeader.ExportedAt) ||
			h.Limits != testHeader.Limits || !maps.Equal(h.Labels, testHeader.Labels) ||
			h.Keys != testHeader.Keys || h.LogicalBytes != testHeader.LogicalBytes {
			t.Errorf("header %+v, want %+v", h, testHeader)
		}
		if len(got) != len(kvs) {
			t.Fatalf("%d records back, want %d", len(got), len(kvs))
		}
		for i := range kvs {
			if !bytes.Equal(got[i].Key, kvs[i].Key) || !bytes.Equal(got[i].Value, kvs[i].Value) {
				t.Errorf("record %d = %q=%q, want %q=%q", i, got[i].Key, got[i].Value, kvs[i].Key, kvs[i].Value)
			}
		}
	}
}

// TestExportLayout pins the documented layout, byte for byte.
func TestExportLayout(t *testing.T) {
	b := encodeExport(t, &ExportHeader{Name: "a", State: StateActive}, []KV{{Key: []byte("k"), Value: []byte("vv")}})
	js := `{"name":"a","id":0,"state":"active","created_at":"0001-01-01T00:00:00Z","exported_at":"0001-01-01T00:00:00Z","limits":{},"keys":0,"logical_bytes":0}`
	want := []byte("TKVX\x01")
	want = append(want, 0, 0, 0, byte(len(js)))
	want = append(want, js...)
	want = append(want, 1, 'k', 2, 'v', 'v', 0, 0, 0, 0, 0, 0, 0, 0, 1)
	if !bytes.Equal(b[:len(b)-4], want) {
		t.Fatalf("layout\n%q\nwant\n%q", b[:len(b)-4], want)
	}
	crc := crc32Castagnoli(want)
	if got := b[len(b)-4:]; !bytes.Equal(got, []byte{byte(crc >> 24), byte(crc >> 16), byte(crc >> 8), byte(crc)}) {
		t.Errorf("checksum %x, want %08x", got, crc)
	}
}

func crc32Castagnoli(b []byte) uint32 {
	// The bitwise definition of CRC-32C, independent of hash/crc32.
	crc := ^uint32(0)
	for _, c := range b {
		crc ^= uint32(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x82F63B78
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

// TestExportDetectsDamage: every truncation, every single-byte change and
// any trailing byte is refused as corrupt.
func TestExportDetectsDamage(t *testing.T) {
	b := encodeExport(t, &testHeader, testRecords())
	for n := range len(b) {
		if _, _, err := decodeExport(b[:n]); !errors.Is(err, ErrCorruptExport) {
			t.Fatalf("truncated to %d of %d bytes: %v, want ErrCorruptExport", n, len(b), err)
		}
	}
	for i := range b {
		for _, x := range []byte{0x01, 0x80, 0xff, byte(i*7+3) | 0x10} {
			c := bytes.Clone(b)
			c[i] ^= x
			if _, _, err := decodeExport(c); !errors.Is(err, ErrCorruptExport) {
				t.Fatalf("byte %d of %d xor %#x: %v, want ErrCorruptExport", i, len(b), x, err)
			}
		}
	}
	if _, _, err := decodeExport(append(bytes.Clone(b), 0)); !errors.Is(err, ErrCorruptExport) {
		t.Errorf("a trailing byte: %v", err)
	}
}

func TestExportReaderRefuses(t *testing.T) {
	good := encodeExport(t, &ExportHeader{Name: "a", State: StateActive}, nil)
	headerEnd := len(good) - 13 // end marker, count, checksum
	withRecords := func(records []byte, count byte) []byte {
		body := append(bytes.Clone(good[:headerEnd]), records...)
		body = append(body, 0, 0, 0, 0, 0, 0, 0, 0, count)
		crc := crc32Castagnoli(body)
		return append(body, byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc))
	}
	if _, kvs, err := decodeExport(withRecords([]byte{1, 'a', 0}, 1)); err != nil || len(kvs) != 1 {
		t.Fatalf("hand-made file: %v, %v", kvs, err)
	}
	bigKey := []byte{0x91, 0x4e}         // 10,001
	bigValue := []byte{0xa1, 0x8d, 0x06} // 100,001
	for name, file := range map[string][]byte{
		"key too long":         withRecords(append(bigKey, 'x'), 1),
		"value too long":       withRecords(append([]byte{1, 'a'}, bigValue...), 1),
		"keys out of order":    withRecords([]byte{1, 'b', 0, 1, 'a', 0}, 2),
		"duplicate key":        withRecords([]byte{1, 'a', 0, 1, 'a', 0}, 2),
		"count too high":       withRecords([]byte{1, 'a', 0}, 2),
		"count too low":        withRecords([]byte{1, 'a', 0}, 0),
		"non-minimal length":   withRecords([]byte{0x81, 0x00, 'a', 0}, 1),
		"overlong varint":      withRecords(bytes.Repeat([]byte{0x80}, 11), 1),
		"wrong magic":          append([]byte("TKVY"), good[4:]...),
		"version 2":            append([]byte("TKVX\x02"), good[5:]...),
		"huge header length":   append([]byte("TKVX\x01\xff\xff\xff\xff"), good[9:]...),
		"empty":                nil,
		"header is not json":   withHeader(t, "not json"),
		"header without state": withHeader(t, `{"name":"a"}`),
		"header, bad state":    withHeader(t, `{"name":"a","state":"frozen"}`),
	} {
		if _, _, err := decodeExport(file); !errors.Is(err, ErrCorruptExport) {
			t.Errorf("%s: %v, want ErrCorruptExport", name, err)
		}
	}
	// Unknown header fields are ignored.
	if _, _, err := decodeExport(withHeader(t, `{"name":"a","state":"active","future":[1,2]}`)); err != nil {
		t.Errorf("unknown header field: %v", err)
	}
}

// withHeader returns a file with the JSON header js and no records, with a
// valid checksum.
func withHeader(t *testing.T, js string) []byte {
	body := []byte("TKVX\x01")
	body = append(body, byte(len(js)>>24), byte(len(js)>>16), byte(len(js)>>8), byte(len(js)))
	body = append(body, js...)
	body = append(body, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	crc := crc32Castagnoli(body)
	return append(body, byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc))
}

func TestExportWriterRefuses(t *testing.T) {
	var buf bytes.Buffer
	if _, err := NewExportWriter(&buf, &ExportHeader{Name: "a"}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("header without a state: %v", err)
	}
	ew, err := NewExportWriter(&buf, &ExportHeader{Name: "a", State: StateActive})
	if err != nil {
		t.Fatal(err)
	}
	for name, kv := range map[string]KV{
		"empty key":  {Key: nil},
		"long key":   {Key: make([]byte, MaxKeySize+1)},
		"long value": {Key: []byte("z"), Value: make([]byte, MaxValueSize+1)},
	} {
		if err := ew.Add(kv.Key, kv.Value); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := ew.Add([]byte("b"), nil); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"b", "a"} {
		if err := ew.Add([]byte(k), nil); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("key %q after b: %v", k, err)
		}
	}
	if err := ew.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ew.Add([]byte("c"), nil); err == nil {
		t.Error("Add after Close succeeded")
	}
	if _, kvs, err := decodeExport(buf.Bytes()); err != nil || len(kvs) != 1 {
		t.Errorf("file after refused adds: %v, %v", kvs, err)
	}

	// A failing writer's error is returned, and sticks.
	fw := &failWriter{after: 100}
	ew, err = NewExportWriter(fw, &ExportHeader{Name: "a", State: StateActive})
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for i := 0; werr == nil && i < 1000; i++ {
		werr = ew.Add(fmt.Appendf(nil, "%08d", i), make([]byte, 1000))
	}
	if werr == nil {
		werr = ew.Close()
	}
	if !errors.Is(werr, errWriteFailed) || !errors.Is(ew.Close(), errWriteFailed) {
		t.Errorf("failing writer: %v", werr)
	}
}

var errWriteFailed = errors.New("write failed")

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after -= len(p); w.after < 0 {
		return 0, errWriteFailed
	}
	return len(p), nil
}

// FuzzReadExport: the decoder never panics, never allocates more than the
// limits allow, and whatever it accepts it writes back the same.
func FuzzReadExport(f *testing.F) {
	f.Add(encodeExport(f, &testHeader, testRecords()))
	f.Add(encodeExport(f, &ExportHeader{Name: "a", State: StateActive}, nil))
	f.Add([]byte("TKVX\x01\x00\x00\x00\x02{}"))
	f.Add([]byte("TKVX\x01\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, kvs, err := decodeExport(b)
		if err != nil {
			if !errors.Is(err, ErrCorruptExport) {
				t.Fatalf("error %v does not match ErrCorruptExport", err)
			}
			return
		}
		for _, kv := range kvs {
			if len(kv.Key) == 0 || len(kv.Key) > MaxKeySize || len(kv.Value) > MaxValueSize {
				t.Fatalf("accepted a record of %d and %d bytes", len(kv.Key), len(kv.Value))
			}
		}
		_, again, err := decodeExport(encodeExport(t, &h, kvs))
		if err != nil || len(again) != len(kvs) {
			t.Fatalf("re-encoded file: %v, %d records of %d", err, len(again), len(kvs))
		}
		for i := range kvs {
			if !bytes.Equal(again[i].Key, kvs[i].Key) || !bytes.Equal(again[i].Value, kvs[i].Value) {
				t.Fatalf("record %d changed in a round trip", i)
			}
		}
	})
}
