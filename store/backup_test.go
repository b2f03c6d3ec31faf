package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tenantkv/tenantkv/keyspace"
)

// readStoreStream reads a whole StoreStream with reads of at most size bytes.
func readStoreStream(tb testing.TB, st *StoreStream, size int) ([]byte, error) {
	tb.Helper()
	var out bytes.Buffer
	buf := make([]byte, size)
	for {
		n, err := st.Read(buf)
		out.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			return out.Bytes(), nil
		}
		if err != nil {
			return out.Bytes(), err
		}
	}
}

// The pulled stream is byte for byte what WriteTo writes, whatever the
// reads' sizes, and its checksum is the snapshot's; VerifyStoreStream
// accepts it and agrees on the summary.
func TestStoreStreamIsWriteTo(t *testing.T) {
	s := newMemStore(t)
	seedStore(t, s, "backup")
	b := s.NewBatch()
	v, _ := b.Tenant(5)
	for i := range 40 { // larger than the stream writer's 256 KiB buffer
		mustSet(t, v, fmt.Sprintf("big-%02d", i), string(bytes.Repeat([]byte{byte(i)}, 20_000)))
	}
	if err := b.Commit(77, false); err != nil {
		t.Fatal(err)
	}
	want := snapshotStream(t, s)
	for _, size := range []int{1, 7, 4096, 1 << 20, 8 << 20} {
		sn := s.NewSnapshot()
		st, err := sn.NewStoreStream()
		if err != nil {
			t.Fatal(err)
		}
		// A write after the snapshot is not in its stream.
		mustSet(t, mustTenant(t, s, 1), fmt.Sprint("later-", size), "x")
		got, err := readStoreStream(t, st, size)
		if err != nil {
			t.Fatalf("reads of %d: %v", size, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("reads of %d: %d bytes differ from WriteTo's %d", size, len(got), len(want))
		}
		sum, err := st.Checksum()
		snapSum, err2 := sn.Checksum()
		if err != nil || err2 != nil || sum != snapSum {
			t.Fatalf("reads of %d: stream checksum %x (%v), snapshot's %x (%v)", size, sum, err, snapSum, err2)
		}
		if n, err := st.Read(make([]byte, 10)); n != 0 || !errors.Is(err, io.EOF) {
			t.Fatalf("read after the end: %d, %v", n, err)
		}
		st.Close()
		st.Close()
		sn.Close()
		want = snapshotStream(t, s) // the next round's snapshot has the later key
	}
	sum, err := VerifyStoreStream(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Checksum != checksumOf(t, s) || sum.AppliedIndex != 77 || sum.Bytes != uint64(len(want)) {
		t.Fatalf("VerifyStoreStream = %+v; store checksum %x", sum, checksumOf(t, s))
	}
	dst := newMemStore(t)
	if err := dst.Restore(bytes.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if checksumOf(t, dst) != sum.Checksum {
		t.Fatal("a restored store's checksum is not the verified one")
	}
}

// A checksum asked before the end, or of a closed stream, is an error, not
// a digest of part of the store.
func TestStoreStreamChecksumOnlyAtTheEnd(t *testing.T) {
	s := newMemStore(t)
	seedStore(t, s, "x")
	sn := s.NewSnapshot()
	defer sn.Close()
	st, err := sn.NewStoreStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Checksum(); err == nil {
		t.Fatal("checksum before the end")
	}
	st.Close()
	if _, err := st.Read(make([]byte, 1<<20)); err == nil {
		t.Fatal("read of a closed stream succeeded")
	}
	if _, err := st.Checksum(); err == nil {
		t.Fatal("checksum of a closed stream")
	}
}

// A store that holds a partial restore streams an error, never a stream
// that would restore as whole.
func TestStoreStreamRefusesAPartialRestore(t *testing.T) {
	s := newMemStore(t)
	seedStore(t, s, "half")
	b := s.db.NewBatch()
	if err := b.Set(restoreMarker, []byte{1}, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	sn := s.NewSnapshot()
	defer sn.Close()
	st, err := sn.NewStoreStream()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := readStoreStream(t, st, 4096); !errors.Is(err, errPartialRestore) {
		t.Fatalf("stream of a partial restore: %v", err)
	}
	// The same store written by WriteTo carries the marker; verifying it
	// refuses it.
	if _, err := VerifyStoreStream(bytes.NewReader(snapshotStream(t, s))); !errors.Is(err, ErrCorruptStream) {
		t.Fatalf("VerifyStoreStream of a partial restore: %v", err)
	}
}

// VerifyStoreStream refuses every truncation and every changed byte, and
// records out of order, which Restore itself would load.
func TestVerifyStoreStreamRefuses(t *testing.T) {
	s := newMemStore(t)
	seedStore(t, s, "v")
	data := snapshotStream(t, s)
	for i := range len(data) {
		if _, err := VerifyStoreStream(bytes.NewReader(data[:i])); !errors.Is(err, ErrCorruptStream) {
			t.Fatalf("truncated to %d of %d bytes: %v", i, len(data), err)
		}
	}
	for i := 0; i < len(data); i += 7 {
		d := bytes.Clone(data)
		d[i] ^= 0x10
		if _, err := VerifyStoreStream(bytes.NewReader(d)); !errors.Is(err, ErrCorruptStream) {
			t.Fatalf("byte %d changed: %v", i, err)
		}
	}
	if _, err := VerifyStoreStream(bytes.NewReader(append(bytes.Clone(data), 0))); !errors.Is(err, ErrCorruptStream) {
		t.Fatalf("a byte after the trailer: %v", err)
	}
	k1 := string(keyspace.TenantKey(1, []byte("b")))
	k2 := string(keyspace.TenantKey(1, []byte("a")))
	env := string(appendEnvelope(nil, 1, []byte("v")))
	for name, recs := range map[string][]record{
		"descending": {{k1, env}, {k2, env}},
		"duplicate":  {{k1, env}, {k1, env}},
	} {
		if _, err := VerifyStoreStream(bytes.NewReader(writeStream(t, StreamStore, recs))); !errors.Is(err, ErrCorruptStream) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := VerifyStoreStream(bytes.NewReader(writeStream(t, StreamStore, []record{{k2, env}, {k1, env}}))); err != nil {
		t.Fatalf("ascending records: %v", err)
	}
}

func TestEstimateSize(t *testing.T) {
	s := newMemStore(t)
	seedStore(t, s, "size")
	n, err := s.ReadOnly().EstimateSize()
	if err != nil || n == 0 {
		t.Fatalf("EstimateSize = %d, %v", n, err)
	}
}

// BenchmarkStoreStream reads a store of 64 MB of 100 kB values as a
// whole-store stream in 4 MiB reads, as a snapshot save does.
func BenchmarkStoreStream(b *testing.B) {
	s := newMemStore(b)
	val := bytes.Repeat([]byte("0123456789abcdef"), 100_000/16)
	for i := 0; i < 640; i += 40 {
		batch := s.NewBatch()
		v, _ := batch.Tenant(1)
		for j := i; j < i+40; j++ {
			mustSet(b, v, fmt.Sprintf("k%05d", j), string(val))
		}
		if err := batch.Commit(uint64(i+1), false); err != nil {
			b.Fatal(err)
		}
	}
	buf := make([]byte, 4<<20)
	b.SetBytes(64 << 20)
	for b.Loop() {
		sn := s.NewSnapshot()
		st, err := sn.NewStoreStream()
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := st.Read(buf)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		st.Close()
		sn.Close()
	}
}
