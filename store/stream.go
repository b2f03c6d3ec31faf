package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/tenantkv/tenantkv/keyspace"
)

// Stream format (version 1), used both for whole-store snapshots and for
// one tenant's export:
//
//	header   "TKVS" version:u8 kind:u8
//	record*  0x01 uvarint(len(key)) key uvarint(len(value)) value
//	trailer  0x00 uvarint(count) crc32c:u32be
//
// The CRC (Castagnoli) covers every byte before it. A reader reports the
// trailer's verdict only at the end, so consumers must treat what they read
// as provisional until Next returns io.EOF.
const (
	streamMagic   = "TKVS"
	streamVersion = 1

	// StreamStore is the kind of a whole-store stream: physical keys.
	StreamStore byte = 'S'
	// StreamTenant is the kind of a one-tenant stream: user keys.
	StreamTenant byte = 'T'

	tagRecord = 0x01
	tagEnd    = 0x00
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// StreamWriter writes a checksummed stream of key/value records.
type StreamWriter struct {
	w     *bufio.Writer
	crc   hash.Hash32
	count uint64
	buf   [binary.MaxVarintLen64]byte
	err   error
}

// NewStreamWriter writes the stream header of the given kind to w.
func NewStreamWriter(w io.Writer, kind byte) (*StreamWriter, error) {
	sw := &StreamWriter{w: bufio.NewWriterSize(w, 256<<10), crc: crc32.New(castagnoli)}
	sw.write([]byte(streamMagic))
	sw.write([]byte{streamVersion, kind})
	return sw, sw.err
}

func (sw *StreamWriter) write(p []byte) {
	if sw.err != nil {
		return
	}
	sw.crc.Write(p)
	_, sw.err = sw.w.Write(p)
}

func (sw *StreamWriter) uvarint(v uint64) {
	n := binary.PutUvarint(sw.buf[:], v)
	sw.write(sw.buf[:n])
}

// Write appends one record.
func (sw *StreamWriter) Write(key, value []byte) error {
	sw.write([]byte{tagRecord})
	sw.uvarint(uint64(len(key)))
	sw.write(key)
	sw.uvarint(uint64(len(value)))
	sw.write(value)
	sw.count++
	return sw.err
}

// Count returns the number of records written so far.
func (sw *StreamWriter) Count() uint64 { return sw.count }

// Close writes the trailer and flushes. It does not close the underlying writer.
func (sw *StreamWriter) Close() error {
	sw.write([]byte{tagEnd})
	sw.uvarint(sw.count)
	if sw.err != nil {
		return sw.err
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], sw.crc.Sum32())
	if _, err := sw.w.Write(sum[:]); err != nil {
		return err
	}
	return sw.w.Flush()
}

// StreamReader reads a stream written by StreamWriter.
type StreamReader struct {
	r      *bufio.Reader
	crc    hash.Hash32
	kind   byte
	count  uint64
	maxKey int
	maxVal int
	key    []byte
	val    []byte
	done   bool
	// err is the first error Next returned; every later call returns it
	// again, so reading cannot resume in the middle of a bad record.
	err error
}

// NewStreamReader reads and checks the header. Records whose key is longer
// than maxKey or whose value is longer than maxVal bytes are refused before
// anything is allocated for them.
func NewStreamReader(r io.Reader, maxKey, maxVal int) (*StreamReader, error) {
	sr := &StreamReader{r: bufio.NewReaderSize(r, 256<<10), crc: crc32.New(castagnoli), maxKey: maxKey, maxVal: maxVal}
	var hdr [6]byte
	if err := sr.full(hdr[:]); err != nil {
		return nil, corrupt("header: %v", err)
	}
	if string(hdr[:4]) != streamMagic {
		return nil, corrupt("bad magic %q", hdr[:4])
	}
	if hdr[4] != streamVersion {
		return nil, corrupt("unsupported version %d", hdr[4])
	}
	if hdr[5] != StreamStore && hdr[5] != StreamTenant {
		return nil, corrupt("unknown kind %q", hdr[5])
	}
	sr.kind = hdr[5]
	return sr, nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruptStream, fmt.Sprintf(format, args...))
}

// Kind returns StreamStore or StreamTenant.
func (sr *StreamReader) Kind() byte { return sr.kind }

func (sr *StreamReader) full(p []byte) error {
	if _, err := io.ReadFull(sr.r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	sr.crc.Write(p)
	return nil
}

type crcByteReader struct{ sr *StreamReader }

func (c crcByteReader) ReadByte() (byte, error) {
	b, err := c.sr.r.ReadByte()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	c.sr.crc.Write([]byte{b})
	return b, nil
}

func (sr *StreamReader) lenField(limit int, what string) (int, error) {
	n, err := binary.ReadUvarint(crcByteReader{sr})
	if err != nil {
		return 0, corrupt("%s length: %v", what, err)
	}
	if n > uint64(limit) {
		return 0, corrupt("%s of %d bytes exceeds %d", what, n, limit)
	}
	return int(n), nil
}

// Next reads the next record. The returned slices are valid until the next
// call. At the end of a well-formed stream it returns io.EOF; a stream whose
// checksum or count does not match returns ErrCorruptStream instead.
func (sr *StreamReader) Next() (key, value []byte, err error) {
	if sr.done {
		return nil, nil, io.EOF
	}
	if sr.err != nil {
		return nil, nil, sr.err
	}
	key, value, err = sr.next()
	if err != nil && !errors.Is(err, io.EOF) {
		sr.err = err
	}
	return key, value, err
}

func (sr *StreamReader) next() (key, value []byte, err error) {
	tag, err := crcByteReader{sr}.ReadByte()
	if err != nil {
		return nil, nil, corrupt("record tag: %v", err)
	}
	switch tag {
	case tagRecord:
	case tagEnd:
		return nil, nil, sr.trailer()
	default:
		return nil, nil, corrupt("unknown tag %#x", tag)
	}
	kl, err := sr.lenField(sr.maxKey, "key")
	if err != nil {
		return nil, nil, err
	}
	sr.key = grow(sr.key, kl)
	if err := sr.full(sr.key); err != nil {
		return nil, nil, corrupt("key: %v", err)
	}
	vl, err := sr.lenField(sr.maxVal, "value")
	if err != nil {
		return nil, nil, err
	}
	sr.val = grow(sr.val, vl)
	if err := sr.full(sr.val); err != nil {
		return nil, nil, corrupt("value: %v", err)
	}
	sr.count++
	return sr.key, sr.val, nil
}

func (sr *StreamReader) trailer() error {
	n, err := binary.ReadUvarint(crcByteReader{sr})
	if err != nil {
		return corrupt("trailer count: %v", err)
	}
	want := sr.crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(sr.r, sum[:]); err != nil {
		return corrupt("trailer checksum: %v", err)
	}
	if got := binary.BigEndian.Uint32(sum[:]); got != want {
		return corrupt("checksum %08x, computed %08x", got, want)
	}
	if n != sr.count {
		return corrupt("trailer says %d records, read %d", n, sr.count)
	}
	sr.done = true
	return io.EOF
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// ExportTenant writes every key of the view's tenant, in order, as a tenant
// stream (user keys). Use a Snapshot view for a consistent export. It returns
// the number of records written.
func (v *TenantView) ExportTenant(w io.Writer) (uint64, error) {
	sw, err := NewStreamWriter(w, StreamTenant)
	if err != nil {
		return 0, err
	}
	it, err := v.NewIterator(nil, nil, false)
	if err != nil {
		return 0, err
	}
	defer it.Close()
	for it.Next() {
		if err := sw.Write(it.Key(), it.Value()); err != nil {
			return sw.Count(), err
		}
	}
	if err := it.Err(); err != nil {
		return sw.Count(), err
	}
	return sw.Count(), sw.Close()
}

// allKeysStart and allKeysEnd bound every physical key tenantkv writes:
// tenant keys are an 8-byte prefix and a non-empty user key, system keys
// are 0xFF followed by a kind byte below 0xFF. The start is 0x00, not the
// empty key: only the empty key lies below it, and nothing writes that,
// whereas a range deletion starting at the empty key is one Pebble
// mishandles (see Restore).
var (
	allKeysStart = []byte{0x00}
	allKeysEnd   = []byte{0xFF, 0xFF}
)

// WriteTo writes every key of the snapshot, tenants and system keyspace alike,
// as a store stream. It is what a replication snapshot carries.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	sw, err := NewStreamWriter(cw, StreamStore)
	if err != nil {
		return cw.n, err
	}
	it, err := sn.s.NewIter(&pebbleIterAll)
	if err != nil {
		return cw.n, err
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return cw.n, err
		}
		if err := sw.Write(it.Key(), v); err != nil {
			it.Close()
			return cw.n, err
		}
	}
	if err := it.Error(); err != nil {
		it.Close()
		return cw.n, err
	}
	if err := it.Close(); err != nil {
		return cw.n, err
	}
	return cw.n, sw.Close()
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// checkPhysicalKey accepts a physical key from a store stream only if it is a
// well-formed tenant key or system key.
func checkPhysicalKey(k []byte) error {
	if keyspace.IsSystemKey(k) {
		if err := checkSystemRecordKey(k); err != nil {
			return corrupt("%v", err)
		}
		return nil
	}
	_, uk, err := keyspace.DecodeTenantKey(k)
	if err != nil {
		return corrupt("%v", err)
	}
	if err := keyspace.CheckKey(uk); err != nil {
		return corrupt("%v", err)
	}
	return nil
}
