package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"testing"

	"github.com/tenantkv/tenantkv/keyspace"
)

type record struct{ k, v string }

// writeStream encodes records as a stream of the given kind.
func writeStream(tb testing.TB, kind byte, recs []record) []byte {
	tb.Helper()
	var buf bytes.Buffer
	sw, err := NewStreamWriter(&buf, kind)
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range recs {
		if err := sw.Write([]byte(r.k), []byte(r.v)); err != nil {
			tb.Fatal(err)
		}
	}
	if sw.Count() != uint64(len(recs)) {
		tb.Fatalf("Count = %d", sw.Count())
	}
	if err := sw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// readStream reads a whole stream. It returns the records read and the error
// that ended the stream (nil for a clean io.EOF).
func readStream(data []byte, maxKey, maxVal int) (kind byte, recs []record, err error) {
	sr, err := NewStreamReader(bytes.NewReader(data), maxKey, maxVal)
	if err != nil {
		return 0, nil, err
	}
	for {
		k, v, err := sr.Next()
		if errors.Is(err, io.EOF) {
			return sr.Kind(), recs, nil
		}
		if err != nil {
			return sr.Kind(), recs, err
		}
		recs = append(recs, record{string(k), string(v)})
	}
}

func TestStreamRoundTrip(t *testing.T) {
	big := string(bytes.Repeat([]byte{0xAB}, 300<<10)) // larger than the 256 KiB buffers
	cases := [][]record{
		nil,
		{{"k", "v"}},
		{{"", ""}, {"a", ""}, {"", "b"}, {"\x00\xff", "\xff\x00"}},
		{{"big", big}, {"after", "x"}},
	}
	for _, kind := range []byte{StreamStore, StreamTenant} {
		for i, recs := range cases {
			data := writeStream(t, kind, recs)
			gotKind, got, err := readStream(data, 1<<20, 1<<20)
			if err != nil {
				t.Fatalf("case %d: %v", i, err)
			}
			if gotKind != kind {
				t.Fatalf("kind %q, want %q", gotKind, kind)
			}
			if fmt.Sprint(got) != fmt.Sprint(recs) && !(len(got) == 0 && len(recs) == 0) {
				t.Fatalf("case %d: read %d records, want %d", i, len(got), len(recs))
			}
		}
	}
	// io.EOF is sticky.
	sr, err := NewStreamReader(bytes.NewReader(writeStream(t, StreamTenant, nil)), 10, 10)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, _, err := sr.Next(); err != io.EOF {
			t.Fatalf("Next at the end = %v, want io.EOF", err)
		}
	}
}

// wantCorrupt fails unless reading data ends in an error that wraps
// ErrCorruptStream.
func wantCorrupt(tb testing.TB, data []byte, what string) {
	tb.Helper()
	_, _, err := readStream(data, 1<<10, 1<<10)
	if err == nil {
		tb.Fatalf("%s: stream accepted", what)
	}
	if !errors.Is(err, ErrCorruptStream) {
		tb.Fatalf("%s: error %v does not wrap ErrCorruptStream", what, err)
	}
	if errors.Is(err, io.EOF) {
		tb.Fatalf("%s: error %v wraps io.EOF", what, err)
	}
}

func TestStreamDetectsEveryByteCorruption(t *testing.T) {
	data := writeStream(t, StreamStore, []record{{"key1", "value1"}, {"", ""}, {"k3", "a longer value, 30 bytes long."}})
	for i := range data {
		orig := data[i]
		for b := range 256 {
			if byte(b) == orig {
				continue
			}
			data[i] = byte(b)
			wantCorrupt(t, data, fmt.Sprintf("byte %d %#x->%#x", i, orig, b))
		}
		data[i] = orig
	}
	if _, _, err := readStream(data, 1<<10, 1<<10); err != nil {
		t.Fatalf("restored stream: %v", err)
	}
}

func TestStreamDetectsEveryTruncation(t *testing.T) {
	data := writeStream(t, StreamTenant, []record{{"key1", "value1"}, {"k2", ""}, {"k3", "v3"}})
	for n := range len(data) {
		wantCorrupt(t, data[:n], fmt.Sprintf("truncated to %d of %d bytes", n, len(data)))
	}
}

func TestStreamBadHeaders(t *testing.T) {
	good := writeStream(t, StreamStore, nil)
	for name, hdr := range map[string][]byte{
		"magic":   []byte("TKVX\x01S"),
		"version": []byte("TKVS\x02S"),
		"kind":    []byte("TKVS\x01Z"),
		"empty":   nil,
	} {
		data := append(hdr, good[6:]...)
		if _, err := NewStreamReader(bytes.NewReader(data), 10, 10); !errors.Is(err, ErrCorruptStream) {
			t.Errorf("%s: NewStreamReader = %v", name, err)
		}
	}
}

// streamPrefix returns a header followed by raw body bytes.
func streamPrefix(kind byte, body ...[]byte) []byte {
	out := []byte{'T', 'K', 'V', 'S', streamVersion, kind}
	for _, b := range body {
		out = append(out, b...)
	}
	return out
}

func uvarint(v uint64) []byte { return binary.AppendUvarint(nil, v) }

func TestStreamOversizeLengthsRefusedBeforeAllocating(t *testing.T) {
	cases := map[string][]byte{
		"key 1<<62":        streamPrefix(StreamStore, []byte{tagRecord}, uvarint(1<<62)),
		"key limit+1":      streamPrefix(StreamStore, []byte{tagRecord}, uvarint(1<<20+1)),
		"value 1<<40":      streamPrefix(StreamStore, []byte{tagRecord}, uvarint(1), []byte("k"), uvarint(1<<40)),
		"value limit+1":    streamPrefix(StreamStore, []byte{tagRecord}, uvarint(1), []byte("k"), uvarint(1<<20+1)),
		"uvarint too long": streamPrefix(StreamStore, []byte{tagRecord}, bytes.Repeat([]byte{0xFF}, 11)),
		"trailer count overflow": streamPrefix(StreamStore, []byte{tagEnd},
			bytes.Repeat([]byte{0xFF}, 11)),
		"unknown tag": streamPrefix(StreamStore, []byte{0x02}),
	}
	for name, data := range cases {
		// Pad so the reader could read far if it wanted to; it must not
		// allocate for the claimed length.
		data = append(data, make([]byte, 1<<10)...)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		sr, err := NewStreamReader(bytes.NewReader(data), 1<<20, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = sr.Next()
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrCorruptStream) {
			t.Errorf("%s: Next = %v, want ErrCorruptStream", name, err)
		}
		// The reader's own 256 KiB buffer is allocated up front; nothing
		// near the claimed length may follow.
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
			t.Errorf("%s: allocated %d bytes", name, grew)
		}
	}
	// Exactly at the limit is fine.
	data := writeStream(t, StreamTenant, []record{{"0123456789", "abcdefghij"}})
	if _, recs, err := readStream(data, 10, 10); err != nil || len(recs) != 1 {
		t.Fatalf("record at the limits: %v, %v", recs, err)
	}
	if _, _, err := readStream(data, 9, 10); !errors.Is(err, ErrCorruptStream) {
		t.Fatalf("key over the limit: %v", err)
	}
	if _, _, err := readStream(data, 10, 9); !errors.Is(err, ErrCorruptStream) {
		t.Fatalf("value over the limit: %v", err)
	}
}

// TestStreamErrorsAreSticky feeds a stream crafted so that, were reading to
// resume after a refused record, the bytes of the refused key would parse as
// three records followed by a valid trailer. A reader must keep failing.
func TestStreamErrorsAreSticky(t *testing.T) {
	inner := bytes.Repeat([]byte{tagRecord, 1, 'x', 0}, 3) // three records x=""
	data := streamPrefix(StreamTenant, []byte{tagRecord}, uvarint(uint64(len(inner))), inner, []byte{tagEnd}, uvarint(3))
	data = binary.BigEndian.AppendUint32(data, crc32.Checksum(data, castagnoli))

	sr, err := NewStreamReader(bytes.NewReader(data), 8, 8) // the 12-byte key is over the limit
	if err != nil {
		t.Fatal(err)
	}
	_, _, first := sr.Next()
	if !errors.Is(first, ErrCorruptStream) {
		t.Fatalf("first Next = %v", first)
	}
	for i := range 6 {
		k, _, err := sr.Next()
		if err == nil || errors.Is(err, io.EOF) {
			t.Fatalf("Next #%d after an error = %q, %v", i+2, k, err)
		}
	}
	// With a larger limit, the same stream is one record with a 12-byte key
	// and no value length: corrupt.
	if _, _, err := readStream(data, 100, 100); !errors.Is(err, ErrCorruptStream) {
		t.Fatalf("crafted stream = %v", err)
	}
}

func TestStreamWriterReportsWriteErrors(t *testing.T) {
	w := &failingWriter{after: 10}
	sw, err := NewStreamWriter(w, StreamTenant)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{1}, 300<<10) // overflows the writer's buffer
	if err := sw.Write([]byte("k"), big); err == nil {
		if err := sw.Close(); err == nil {
			t.Fatal("write errors were swallowed")
		}
	}
}

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.after {
		return 0, errors.New("disk full")
	}
	f.after -= len(p)
	return len(p), nil
}

// seedStore writes a little of everything into s.
func seedStore(tb testing.TB, s *Store, tag string) {
	tb.Helper()
	b := s.NewBatch()
	for _, id := range []keyspace.TenantID{1, 2, 1 << 40, keyspace.MaxID} {
		v, err := b.Tenant(id)
		if err != nil {
			tb.Fatal(err)
		}
		for i := range 20 {
			mustSet(tb, v, fmt.Sprintf("%s-%02d", tag, i), fmt.Sprintf("%s-%d-%d", tag, id, i))
		}
		mustSet(tb, v, "\xff", "")
		if err := b.System().Set(keyspace.HistoryKey(id, 1, crc32.ChecksumIEEE([]byte(tag))), []byte(tag)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := b.System().Set(keyspace.NextIDKey(), []byte(tag)); err != nil {
		tb.Fatal(err)
	}
	if err := b.Commit(uint64(len(tag)), false); err != nil {
		tb.Fatal(err)
	}
}

func checksumOf(tb testing.TB, s *Store) uint64 {
	tb.Helper()
	c, err := s.Checksum()
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func snapshotStream(tb testing.TB, s *Store) []byte {
	tb.Helper()
	sn := s.NewSnapshot()
	defer sn.Close()
	var buf bytes.Buffer
	n, err := sn.WriteTo(&buf)
	if err != nil {
		tb.Fatal(err)
	}
	if n != int64(buf.Len()) {
		tb.Fatalf("WriteTo returned %d, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

func wantIncomplete(tb testing.TB, s *Store, want bool) {
	tb.Helper()
	got, err := s.RestoreIncomplete()
	if err != nil || got != want {
		tb.Fatalf("RestoreIncomplete = %v, %v; want %v", got, err, want)
	}
}

func TestSnapshotRestore(t *testing.T) {
	src, dst := newMemStore(t), newMemStore(t)
	seedStore(t, src, "source")
	seedStore(t, dst, "old") // replaced entirely
	data := snapshotStream(t, src)
	if err := dst.Restore(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if checksumOf(t, dst) != checksumOf(t, src) {
		t.Fatal("checksums differ after Restore")
	}
	if a, b := systemDump(t, src.System()), systemDump(t, dst.System()); !equalStrings(a, b) {
		t.Fatalf("system keyspaces differ:\n%v\n%v", a, b)
	}
	ai, _ := dst.AppliedIndex()
	if want, _ := src.AppliedIndex(); ai != want {
		t.Fatalf("AppliedIndex %d, want %d", ai, want)
	}
	wantIncomplete(t, dst, false)
	wantNotFound(t, mustTenant(t, dst, 1), "old-00")
	// A snapshot's stream does not change with later writes.
	sn := src.NewSnapshot()
	mustSet(t, mustTenant(t, src, 1), "later", "x")
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	sn.Close()
	if !bytes.Equal(buf.Bytes(), data) {
		t.Fatal("snapshot stream changed after a later write")
	}
	// Restoring an empty store's stream empties the store.
	if err := dst.Restore(bytes.NewReader(snapshotStream(t, newMemStore(t)))); err != nil {
		t.Fatal(err)
	}
	if checksumOf(t, dst) != checksumOf(t, newMemStore(t)) {
		t.Fatal("store not empty after restoring an empty stream")
	}
}

func TestRestoreLargerThanAChunk(t *testing.T) {
	src, dst := newMemStore(t), newMemStore(t)
	b := src.NewBatch()
	v, _ := b.Tenant(3)
	val := bytes.Repeat([]byte{7}, 90_000)
	for i := range 60 { // ~5.4 MB, more than restoreChunk
		mustSet(t, v, fmt.Sprint(i), string(val))
	}
	if err := b.Commit(9, false); err != nil {
		t.Fatal(err)
	}
	data := snapshotStream(t, src)
	if len(data) <= restoreChunk {
		t.Fatalf("stream of %d bytes does not exceed a chunk", len(data))
	}
	if err := dst.Restore(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if checksumOf(t, dst) != checksumOf(t, src) {
		t.Fatal("checksums differ")
	}
	// Cut in the last chunk: the first chunk is committed, the marker stays.
	if err := dst.Restore(bytes.NewReader(data[:len(data)-100])); !errors.Is(err, ErrCorruptStream) {
		t.Fatalf("Restore of a truncated stream = %v", err)
	}
	wantIncomplete(t, dst, true)
}

func TestRestoreFailureLeavesMarker(t *testing.T) {
	src, dst := newMemStore(t), newMemStore(t)
	seedStore(t, src, "src")
	data := snapshotStream(t, src)
	bad := map[string][]byte{
		"truncated":      data[:len(data)-3],
		"bad checksum":   append(bytes.Clone(data[:len(data)-1]), data[len(data)-1]^1),
		"flipped record": func() []byte { d := bytes.Clone(data); d[len(d)/2] ^= 0x40; return d }(),
	}
	for name, stream := range bad {
		seedStore(t, dst, "dst")
		if err := dst.Restore(bytes.NewReader(stream)); !errors.Is(err, ErrCorruptStream) {
			t.Fatalf("%s: Restore = %v, want ErrCorruptStream", name, err)
		}
		wantIncomplete(t, dst, true)
		if err := dst.Restore(bytes.NewReader(data)); err != nil {
			t.Fatalf("%s: second Restore: %v", name, err)
		}
		wantIncomplete(t, dst, false)
		if checksumOf(t, dst) != checksumOf(t, src) {
			t.Fatalf("%s: checksums differ after the second Restore", name)
		}
	}
}

func TestRestoreRefusesBeforeTouchingTheStore(t *testing.T) {
	s := newMemStore(t)
	seedStore(t, s, "keep")
	before := checksumOf(t, s)
	tenantStream := writeStream(t, StreamTenant, []record{{"k", "v"}})
	for name, stream := range map[string][]byte{
		"empty":         nil,
		"bad magic":     []byte("XXXX\x01S"),
		"tenant stream": tenantStream,
	} {
		if err := s.Restore(bytes.NewReader(stream)); !errors.Is(err, ErrCorruptStream) {
			t.Fatalf("%s: Restore = %v", name, err)
		}
		wantIncomplete(t, s, false)
		if checksumOf(t, s) != before {
			t.Fatalf("%s: store changed", name)
		}
	}
}

func TestRestoreRefusesBadPhysicalKeys(t *testing.T) {
	tk := func(id keyspace.TenantID, k string) string { return string(keyspace.TenantKey(id, []byte(k))) }
	for name, key := range map[string]string{
		"tenant 0":           tk(0, "k"),
		"empty user key":     tk(1, ""),
		"short key":          "\x00\x00\x01",
		"empty key":          "",
		"MaxID+1":            tk(keyspace.MaxID+1, "k"),
		"bare 0xFF":          "\xff",
		"0xFF 0x00":          "\xff\x00",
		"0xFF 0xFF":          "\xff\xff",
		"beyond system keys": "\xff\xff\x01",
		"oversize user key":  tk(1, string(bytes.Repeat([]byte{1}, keyspace.MaxKeySize+1))),
	} {
		s := newMemStore(t)
		stream := writeStream(t, StreamStore, []record{{tk(1, "ok"), string(appendEnvelope(nil, 0, []byte("v")))}, {key, "v"}})
		if err := s.Restore(bytes.NewReader(stream)); !errors.Is(err, ErrCorruptStream) {
			t.Errorf("%s: Restore = %v, want ErrCorruptStream", name, err)
		}
		wantIncomplete(t, s, true)
	}
	// A stream carrying the restore marker itself restores without it.
	s := newMemStore(t)
	stream := writeStream(t, StreamStore, []record{{tk(1, "ok"), string(appendEnvelope(nil, 3, []byte("v")))}, {string(restoreMarker), "\x01"}})
	if err := s.Restore(bytes.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	wantIncomplete(t, s, false)
	if got := mustGet(t, mustTenant(t, s, 1), "ok"); got != "v" {
		t.Fatalf("restored value %q", got)
	}
}

func TestExportTenant(t *testing.T) {
	s := newMemStore(t)
	id := keyspace.TenantID(2)
	populateNeighbours(t, s, id)
	v := mustTenant(t, s, id)
	mustSet(t, v, "\x00\x00\x00\x00\x00\x00\x00\x03", "looks like tenant 3's prefix")
	want := dump(t, v)

	sn := s.NewSnapshot()
	defer sn.Close()
	sv, _ := sn.Tenant(id)
	mustSet(t, v, "after-snapshot", "x") // not in the export
	var buf bytes.Buffer
	n, err := sv.ExportTenant(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != uint64(len(want)) {
		t.Fatalf("ExportTenant returned %d, want %d", n, len(want))
	}
	kind, recs, err := readStream(buf.Bytes(), keyspace.MaxKeySize, keyspace.MaxValueSize)
	if err != nil {
		t.Fatal(err)
	}
	if kind != StreamTenant {
		t.Fatalf("kind %q", kind)
	}
	// User keys only, exactly the tenant's, in order: no tenant prefix, no
	// neighbour's key, no system key.
	var got []string
	for _, r := range recs {
		got = append(got, r.k+"="+r.v)
	}
	if !equalStrings(got, want) {
		t.Fatalf("export = %q\nwant %q", got, want)
	}
	// A store restore refuses a tenant export.
	if err := newMemStore(t).Restore(bytes.NewReader(buf.Bytes())); !errors.Is(err, ErrCorruptStream) {
		t.Fatalf("Restore of a tenant export = %v", err)
	}
	// Exporting an empty tenant gives a valid, empty stream.
	buf.Reset()
	ev := mustTenant(t, s, 99)
	if n, err := ev.ExportTenant(&buf); err != nil || n != 0 {
		t.Fatalf("empty export: %d, %v", n, err)
	}
	if _, recs, err := readStream(buf.Bytes(), 10, 10); err != nil || len(recs) != 0 {
		t.Fatalf("empty export reads as %v, %v", recs, err)
	}
}
