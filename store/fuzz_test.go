package store

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"testing"

	"github.com/tenantkv/tenantkv/keyspace"
)

// fuzzIDs are the tenants FuzzTenantOps works on: two neighbours and the
// last ID, whose span ends where the system keyspace begins.
var fuzzIDs = []keyspace.TenantID{1, 2, keyspace.MaxID}

// opDecoder turns fuzz input into harness operations.
type opDecoder struct {
	data     []byte
	specials [][]byte
}

func (d *opDecoder) byte() byte {
	if len(d.data) == 0 {
		return 0
	}
	b := d.data[0]
	d.data = d.data[1:]
	return b
}

// bytes returns a key or bound: raw bytes from the input (selector below
// 0xC0) or one of the adversarial keys.
func (d *opDecoder) bytes() []byte {
	sel := d.byte()
	if sel >= 0xC0 {
		return d.specials[int(sel-0xC0)%len(d.specials)]
	}
	n := min(int(sel%6), len(d.data))
	b := bytes.Clone(d.data[:n])
	d.data = d.data[n:]
	return b
}

func (d *opDecoder) value() []byte {
	sel := d.byte()
	if sel >= 0xF0 {
		return specialVals[int(sel-0xF0)%len(specialVals)]
	}
	n := min(int(sel%8), len(d.data))
	b := bytes.Clone(d.data[:n])
	d.data = d.data[n:]
	return b
}

func (d *opDecoder) tenant() keyspace.TenantID {
	sel := d.byte()
	if sel >= 0xF0 {
		return invalidIDs[int(sel-0xF0)%len(invalidIDs)]
	}
	return fuzzIDs[int(sel)%len(fuzzIDs)]
}

func (d *opDecoder) next() (op, bool) {
	if len(d.data) == 0 {
		return op{}, false
	}
	flags := d.byte()
	o := op{kind: opKind(flags&0x7F) % numOpKinds, batch: flags&0x80 != 0}
	switch o.kind {
	case opSet:
		o.tenant, o.key, o.value = d.tenant(), d.bytes(), d.value()
	case opDelete, opGet, opClear, opPurge, opCheckSnapshot:
		o.tenant, o.key = d.tenant(), d.bytes()
	case opDeleteRange, opScan:
		o.tenant, o.key, o.end = d.tenant(), d.bytes(), d.bytes()
		mode := d.byte()
		o.limit, o.reverse, o.keysOnly = int(mode%5), mode&0x10 != 0, mode&0x20 != 0
	case opSysSet:
		o.sysKey, o.value = sysWriteKeys[int(d.byte())%len(sysWriteKeys)], d.value()
	case opCommit:
		o.applied = uint64(d.byte())
	}
	return o, true
}

// FuzzTenantOps decodes its input into operations on three tenants (1, 2 and
// MaxID) through live views, batches and snapshots, runs them on an
// in-memory store and the model, and checks after each that they agree.
func FuzzTenantOps(f *testing.F) {
	// Each seed is a short program; see opDecoder for the encoding.
	set := func(tenant byte, key ...byte) []byte {
		return append([]byte{byte(opSet), tenant, byte(len(key))}, append(key, 1, 'v')...)
	}
	f.Add([]byte{})
	f.Add(set(0, 'a'))
	f.Add(append(append(set(0, 'a', 'b'), set(1, 'a', 'b')...), byte(opScan), 0, 0, 0, 0))
	// Adversarial keys in every tenant, then clears.
	var prog, batched []byte
	for sel := byte(0xC0); sel < 0xC0+40; sel++ {
		prog = append(prog, byte(opSet), sel%3, sel, 0)
		batched = append(batched, byte(opSet)|0x80, sel%3, sel, 0)
	}
	f.Add(append(bytes.Clone(prog), byte(opClear), 1, 0, byte(opPurge), 2, 0, byte(opScan), 0, 0, 0, 0x10))
	// A batch over several tenants and the system keyspace, committed.
	f.Add(append(append([]byte{byte(opBegin)}, batched...),
		byte(opSysSet)|0x80, 2, 3, 'x', 'y', 'z', byte(opDeleteRange)|0x80, 2, 0xC3, 0, 0, byte(opCommit), 7))
	// The same, aborted, with a snapshot taken before.
	f.Add(append(append([]byte{byte(opSnapshot), byte(opBegin)}, batched...),
		byte(opAbort), byte(opCheckSnapshot), 0, 0))
	// Invalid tenants, bad ranges and oversize keys and values.
	f.Add([]byte{byte(opSet), 0xF0, 1, 'k', 0xF5, byte(opScan), 0, 2, 'b', 'b', 2, 'b', 'b', 0,
		byte(opDeleteRange), 1, 1, 'z', 1, 'a', 0, byte(opSet), 1, 0xC0 + 8, 0, byte(opSet), 1, 1, 'k', 0xF5})

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return
		}
		s := newMemStore(t)
		h := newHarness(t, s, fuzzIDs)
		defer h.close()
		d := &opDecoder{data: data, specials: adversarialKeys(fuzzIDs)}
		for range 200 {
			o, ok := d.next()
			if !ok {
				break
			}
			h.do(o)
			h.check()
		}
	})
}

// FuzzStreamReader feeds arbitrary bytes to the stream reader and to
// Store.Restore. Neither may panic; the reader may only report a clean end
// for a stream whose trailer checksum is right; a failed Restore leaves the
// store either untouched or marked incomplete.
func FuzzStreamReader(f *testing.F) {
	seedStream := func(kind byte, recs ...record) []byte {
		var buf bytes.Buffer
		sw, _ := NewStreamWriter(&buf, kind)
		for _, r := range recs {
			_ = sw.Write([]byte(r.k), []byte(r.v))
		}
		_ = sw.Close()
		return buf.Bytes()
	}
	tk := func(id keyspace.TenantID, k string) string { return string(keyspace.TenantKey(id, []byte(k))) }
	valid := seedStream(StreamStore, record{tk(1, "a"), "1"}, record{tk(2, "b"), ""},
		record{string(keyspace.AppliedIndexKey().Bytes()), string(keyspace.EncodeUint64(5))})
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add(seedStream(StreamStore))
	f.Add(seedStream(StreamTenant, record{"k", "v"}))
	f.Add(seedStream(StreamStore, record{"\xff", "bad system key"}))
	f.Add(seedStream(StreamStore, record{tk(0, "k"), "tenant zero"}))
	f.Add(streamPrefix(StreamStore, []byte{tagRecord}, uvarint(1<<62)))
	f.Add([]byte("TKVS\x01S\x00\x00"))
	f.Add([]byte{})

	src := newMemStore(f)
	seedStore(f, src, "seed")
	var seed bytes.Buffer
	sn := src.NewSnapshot()
	if _, err := sn.WriteTo(&seed); err != nil {
		f.Fatal(err)
	}
	sn.Close()
	seedSum := checksumOf(f, src)
	f.Add(seed.Bytes())
	dst := newMemStore(f)

	f.Fuzz(func(t *testing.T, data []byte) {
		checkStreamReader(t, data)

		// Restore into a store holding the seed content.
		if err := dst.Restore(bytes.NewReader(seed.Bytes())); err != nil {
			t.Fatalf("restore seed: %v", err)
		}
		err := dst.Restore(bytes.NewReader(data))
		incomplete, ierr := dst.RestoreIncomplete()
		if ierr != nil {
			t.Fatal(ierr)
		}
		if err != nil {
			if !incomplete && checksumOf(t, dst) != seedSum {
				t.Fatalf("failed Restore (%v) changed the store without marking it incomplete", err)
			}
			return
		}
		if incomplete {
			t.Fatal("successful Restore left the store marked incomplete")
		}
		// What was restored is what the stream holds.
		got := snapshotStream(t, dst)
		_, want, rerr := readStream(data, keyspace.MaxKeySize+keyspace.PrefixLen+64, keyspace.MaxValueSize+1<<20)
		if rerr != nil {
			t.Fatalf("Restore accepted a stream the reader refuses: %v", rerr)
		}
		_, have, _ := readStream(got, 1<<20, 1<<20)
		filtered := want[:0]
		for _, r := range want {
			if r.k != string(restoreMarker) {
				filtered = append(filtered, r)
			}
		}
		if !sameRecordSet(have, filtered) {
			t.Fatalf("restored %d records, stream holds %d", len(have), len(filtered))
		}
	})
}

// sameRecordSet reports whether a (sorted, from a snapshot) holds exactly the
// last value of each key of b (in stream order).
func sameRecordSet(a, b []record) bool {
	last := map[string]string{}
	for _, r := range b {
		last[r.k] = r.v
	}
	if len(last) != len(a) {
		return false
	}
	for _, r := range a {
		if v, ok := last[r.k]; !ok || v != r.v {
			return false
		}
	}
	return true
}

// checkStreamReader reads data with the stream reader and checks its
// verdict independently.
func checkStreamReader(t *testing.T, data []byte) {
	t.Helper()
	src := bytes.NewReader(data)
	// A bufio.Reader of the reader's own buffer size is used as is, so what
	// it has consumed can be measured.
	br := bufio.NewReaderSize(src, 256<<10)
	sr, err := NewStreamReader(br, 64, 1024)
	if err != nil {
		if !errors.Is(err, ErrCorruptStream) {
			t.Fatalf("NewStreamReader: %v does not wrap ErrCorruptStream", err)
		}
		return
	}
	var n uint64
	for {
		_, _, err := sr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if !errors.Is(err, ErrCorruptStream) {
				t.Fatalf("Next: %v does not wrap ErrCorruptStream", err)
			}
			// Errors are sticky.
			if _, _, err2 := sr.Next(); err2 == nil || errors.Is(err2, io.EOF) {
				t.Fatalf("Next after %v = %v", err, err2)
			}
			return
		}
		n++
		if n > uint64(len(data)) {
			t.Fatalf("%d records from %d bytes", n, len(data))
		}
	}
	// A clean end: the bytes consumed end with a CRC-32C of everything
	// before it, preceded by the record count.
	consumed := len(data) - br.Buffered() - src.Len()
	if consumed < 6+1+1+4 {
		t.Fatalf("clean end after %d bytes", consumed)
	}
	body, sum := data[:consumed-4], binary.BigEndian.Uint32(data[consumed-4:consumed])
	if crc32.Checksum(body, castagnoli) != sum {
		t.Fatalf("clean end for a stream whose checksum is wrong")
	}
	if _, _, err := sr.Next(); err != io.EOF {
		t.Fatalf("Next after the end = %v", err)
	}
}
