package client

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"maps"
	"time"
)

// The export file format, version 1. DB.ExportTenant writes it and
// DB.ImportTenant reads it; ExportWriter and ExportReader let applications
// do the same. Integers are big-endian; "uvarint" is encoding/binary's
// unsigned varint.
//
//	magic        4 bytes   "TKVX"
//	version      1 byte    1
//	header len   4 bytes   uint32, at most 1 MiB
//	header       JSON object (ExportHeader): name, id, state, created_at,
//	             exported_at, limits, labels, keys, logical_bytes, and
//	             audit, the tenant's audit trail (newest events that fit)
//	records      for each pair, in strictly ascending key order:
//	               uvarint key length (1..10,000), key,
//	               uvarint value length (0..100,000), value
//	end          1 byte    0 (a key length of zero: no more records)
//	count        8 bytes   uint64, the number of records
//	checksum     4 bytes   CRC-32C (Castagnoli) of every byte before it
//
// Nothing follows the checksum. A reader refuses a file that breaks any of
// these rules, so a truncated file, or one with any single byte changed, is
// always refused. Keys are the tenant's own keys, without any prefix; the
// file holds nothing else of the cluster. Readers ignore header fields they
// do not know.

// ExportMagic starts every export file.
const ExportMagic = "TKVX"

// ExportVersion is the version of the export format this package writes
// and reads.
const ExportVersion = 1

// maxExportHeader caps the JSON header of an export file.
const maxExportHeader = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ExportHeader is the tenant's record at the start of an export file.
type ExportHeader struct {
	Name       string            // the tenant's name when it was exported
	ID         uint64            // its ID in the cluster it came from
	State      string            // a tenant state (StateActive, StateSuspended...); "read-only" in files of older releases
	CreatedAt  time.Time         // when the tenant was created
	ExportedAt time.Time         // when the export began
	Limits     Limits            // the tenant's limits; zero: unlimited
	Labels     map[string]string // the tenant's labels
	// Keys and LogicalBytes are the tenant's usage as the server reported
	// it when the export began; they are informational (the records and
	// the trailer's count are exact).
	Keys         uint64
	LogicalBytes uint64
	// Audit is the tenant's audit trail when the export began, oldest
	// first: as many of the newest events as fit in the header
	// (AuditDropped counts the older ones left out). ImportTenant records
	// them in the new tenant's trail.
	Audit        []AuditEvent
	AuditDropped uint64
}

type exportHeaderJSON struct {
	Name         string            `json:"name"`
	ID           uint64            `json:"id"`
	State        string            `json:"state"`
	CreatedAt    time.Time         `json:"created_at"`
	ExportedAt   time.Time         `json:"exported_at"`
	Limits       exportLimitsJSON  `json:"limits"`
	Labels       map[string]string `json:"labels,omitempty"`
	Keys         uint64            `json:"keys"`
	LogicalBytes uint64            `json:"logical_bytes"`
	Audit        []auditJSON       `json:"audit,omitempty"`
	AuditDropped uint64            `json:"audit_dropped,omitempty"`
}

// auditJSON is an audit event in an export header and in an import
// request (OpTenantAudit "import").
type auditJSON struct {
	Seq    uint64    `json:"seq"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Kind   string    `json:"kind"`
	Before string    `json:"before,omitempty"`
	After  string    `json:"after,omitempty"`
	Prev   []byte    `json:"prev,omitempty"`
	Hash   []byte    `json:"hash,omitempty"`
}

func auditToJSON(evs []AuditEvent) []auditJSON {
	out := make([]auditJSON, len(evs))
	for i, e := range evs {
		out[i] = auditJSON(e)
		out[i].At = e.At.UTC()
	}
	return out
}

type exportLimitsJSON struct {
	MaxBytes      uint64 `json:"max_bytes,omitempty"`
	MaxKeys       uint64 `json:"max_keys,omitempty"`
	OpsPerSec     uint64 `json:"ops_per_sec,omitempty"`
	Burst         uint64 `json:"burst,omitempty"`
	MaxConcurrent uint64 `json:"max_concurrent,omitempty"`
	MaxWatches    uint64 `json:"max_watches,omitempty"`

	MaxConnections uint64 `json:"max_connections,omitempty"`
}

// ExportWriter writes an export file. It is not safe for concurrent use.
type ExportWriter struct {
	w       *bufio.Writer
	crc     hash.Hash32
	records uint64
	bytes   uint64
	last    []byte
	err     error // sticky: the first failure
	closed  bool
}

// NewExportWriter writes the magic, the version and h to w and returns a
// writer for the records. Nothing is flushed to w before Close or until its
// buffer fills.
func NewExportWriter(w io.Writer, h *ExportHeader) (*ExportWriter, error) {
	if err := checkState(h.State); err != nil || h.State == "" {
		return nil, fmt.Errorf("%w: export header state %q", ErrInvalidArgument, h.State)
	}
	js, err := json.Marshal(exportHeaderJSON{
		Name: h.Name, ID: h.ID, State: h.State, CreatedAt: h.CreatedAt.UTC(), ExportedAt: h.ExportedAt.UTC(),
		Limits: exportLimitsJSON(h.Limits), Labels: h.Labels, Keys: h.Keys, LogicalBytes: h.LogicalBytes,
		Audit: auditToJSON(h.Audit), AuditDropped: h.AuditDropped,
	})
	if err != nil {
		return nil, fmt.Errorf("tenantkv: export header: %w", err)
	}
	if len(js) > maxExportHeader {
		return nil, fmt.Errorf("%w: export header of %d bytes exceeds %d", ErrInvalidArgument, len(js), maxExportHeader)
	}
	ew := &ExportWriter{w: bufio.NewWriterSize(w, 64<<10), crc: crc32.New(castagnoli)}
	var head [9]byte
	copy(head[:], ExportMagic)
	head[4] = ExportVersion
	binary.BigEndian.PutUint32(head[5:], uint32(len(js)))
	ew.write(head[:])
	ew.write(js)
	return ew, ew.err
}

func (ew *ExportWriter) write(p []byte) {
	if ew.err != nil {
		return
	}
	ew.crc.Write(p)
	if _, err := ew.w.Write(p); err != nil {
		ew.err = err
	}
}

func (ew *ExportWriter) writeUvarint(n uint64) {
	var b [binary.MaxVarintLen64]byte
	ew.write(b[:binary.PutUvarint(b[:], n)])
}

// Add writes one record. Keys must be 1 to MaxKeySize bytes and strictly
// ascending, values at most MaxValueSize bytes. The writer does not keep
// the slices.
func (ew *ExportWriter) Add(key, value []byte) error {
	switch {
	case ew.err != nil:
		return ew.err
	case ew.closed:
		return fmt.Errorf("%w: export writer closed", ErrInvalidArgument)
	case len(key) == 0 || len(key) > MaxKeySize || len(value) > MaxValueSize:
		return fmt.Errorf("%w: record of a %d-byte key and a %d-byte value", ErrInvalidArgument, len(key), len(value))
	case ew.records > 0 && bytes.Compare(key, ew.last) <= 0:
		return fmt.Errorf("%w: key %q does not follow %q", ErrInvalidArgument, key, ew.last)
	}
	ew.writeUvarint(uint64(len(key)))
	ew.write(key)
	ew.writeUvarint(uint64(len(value)))
	ew.write(value)
	ew.last = append(ew.last[:0], key...)
	ew.records++
	ew.bytes += uint64(len(key) + len(value))
	return ew.err
}

// Records returns the number of records added; Bytes their keys' and
// values' bytes.
func (ew *ExportWriter) Records() uint64 { return ew.records }

// Bytes returns the bytes of the keys and values added so far.
func (ew *ExportWriter) Bytes() uint64 { return ew.bytes }

// Close writes the end marker and the trailer and flushes. It does not
// close the underlying writer. A file whose writer was not closed is
// refused by every reader.
func (ew *ExportWriter) Close() error {
	if ew.closed {
		return ew.err
	}
	ew.closed = true
	var tail [9]byte // the end marker and the count
	binary.BigEndian.PutUint64(tail[1:], ew.records)
	ew.write(tail[:])
	if ew.err != nil {
		return ew.err
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], ew.crc.Sum32())
	if _, err := ew.w.Write(sum[:]); err != nil {
		ew.err = err
		return err
	}
	ew.err = ew.w.Flush()
	return ew.err
}

// ExportReader reads and verifies an export file. It is not safe for
// concurrent use.
//
// Records are handed out before the checksum at the end is checked: a
// caller that must not act on a corrupt file reads it to the end once (as
// DB.ImportTenant does) before acting on it.
type ExportReader struct {
	r       *bufio.Reader
	crc     hash.Hash32
	header  ExportHeader
	records uint64
	bytes   uint64
	last    []byte
	err     error // sticky; io.EOF once the file is verified
	scratch [8]byte
}

// NewExportReader reads the magic, the version and the header from r. Its
// errors match ErrCorruptExport when the file is at fault.
func NewExportReader(r io.Reader) (*ExportReader, error) {
	er := &ExportReader{r: bufio.NewReaderSize(r, 64<<10), crc: crc32.New(castagnoli)}
	var head [9]byte
	if err := er.read(head[:], "header"); err != nil {
		return nil, err
	}
	if string(head[:4]) != ExportMagic {
		return nil, corrupt("not a tenantkv export file (magic %q)", head[:4])
	}
	if head[4] != ExportVersion {
		return nil, corrupt("export format version %d, this client reads version %d", head[4], ExportVersion)
	}
	n := binary.BigEndian.Uint32(head[5:])
	if n > maxExportHeader {
		return nil, corrupt("header of %d bytes exceeds %d", n, maxExportHeader)
	}
	// Read the header as it arrives: a forged length costs no more memory
	// than the bytes that are really there.
	js, err := io.ReadAll(io.LimitReader(er.r, int64(n)))
	if err != nil {
		return nil, fmt.Errorf("tenantkv: read export file: %w", err)
	}
	if len(js) < int(n) {
		return nil, corrupt("truncated in the header")
	}
	er.crc.Write(js)
	var h exportHeaderJSON
	if err := json.Unmarshal(js, &h); err != nil {
		return nil, corrupt("header: %v", err)
	}
	if h.State == "" || checkState(h.State) != nil {
		return nil, corrupt("header: state %q", h.State)
	}
	er.header = ExportHeader{
		Name: h.Name, ID: h.ID, State: h.State, CreatedAt: h.CreatedAt, ExportedAt: h.ExportedAt,
		Limits: Limits(h.Limits), Labels: h.Labels, Keys: h.Keys, LogicalBytes: h.LogicalBytes,
		AuditDropped: h.AuditDropped,
	}
	for _, e := range h.Audit {
		er.header.Audit = append(er.header.Audit, AuditEvent(e))
	}
	return er, nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruptExport, fmt.Sprintf(format, args...))
}

// read fills p from the file, adding it to the checksum. A file that ends
// early is corrupt; other read errors are returned as they are.
func (er *ExportReader) read(p []byte, what string) error {
	if _, err := io.ReadFull(er.r, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return corrupt("truncated in the %s", what)
		}
		return fmt.Errorf("tenantkv: read export file: %w", err)
	}
	er.crc.Write(p)
	return nil
}

// readUvarint reads a uvarint of at most max, adding it to the checksum.
func (er *ExportReader) readUvarint(max uint64, what string) (uint64, error) {
	var n uint64
	for i := 0; ; i++ {
		b, err := er.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, corrupt("truncated in a record")
			}
			return 0, fmt.Errorf("tenantkv: read export file: %w", err)
		}
		er.crc.Write([]byte{b})
		if i == 9 || (i == 8 && b > 1) {
			return 0, corrupt("%s length overflows", what)
		}
		n |= uint64(b&0x7f) << (7 * i)
		if n > max {
			return 0, corrupt("%s length %d exceeds %d", what, n, max)
		}
		if b < 0x80 {
			if i > 0 && b == 0 {
				return 0, corrupt("%s length is not minimally encoded", what)
			}
			return n, nil
		}
	}
}

// Header returns the file's header. The Labels map is the caller's.
func (er *ExportReader) Header() ExportHeader {
	h := er.header
	h.Labels = maps.Clone(h.Labels)
	return h
}

// Records returns the number of records read so far; Bytes their keys' and
// values' bytes.
func (er *ExportReader) Records() uint64 { return er.records }

// Bytes returns the bytes of the keys and values read so far.
func (er *ExportReader) Bytes() uint64 { return er.bytes }

// Next returns the next record. After the last one it checks the trailer
// (the record count and the checksum) and that nothing follows, and returns
// io.EOF only if all of that holds. The slices are the caller's.
func (er *ExportReader) Next() (key, value []byte, err error) {
	if er.err != nil {
		return nil, nil, er.err
	}
	key, value, err = er.next()
	if err != nil {
		er.err = err
	}
	return key, value, err
}

func (er *ExportReader) next() (key, value []byte, err error) {
	kn, err := er.readUvarint(MaxKeySize, "key")
	if err != nil {
		return nil, nil, err
	}
	if kn == 0 {
		return nil, nil, er.trailer()
	}
	key = make([]byte, kn)
	if err := er.read(key, "record"); err != nil {
		return nil, nil, err
	}
	if er.records > 0 && bytes.Compare(key, er.last) <= 0 {
		return nil, nil, corrupt("key %q does not follow %q", key, er.last)
	}
	vn, err := er.readUvarint(MaxValueSize, "value")
	if err != nil {
		return nil, nil, err
	}
	value = make([]byte, vn)
	if err := er.read(value, "record"); err != nil {
		return nil, nil, err
	}
	er.last = append(er.last[:0], key...)
	er.records++
	er.bytes += kn + vn
	return key, value, nil
}

// trailer checks what follows the end marker and returns io.EOF if the
// file is whole.
func (er *ExportReader) trailer() error {
	if err := er.read(er.scratch[:8], "trailer"); err != nil {
		return err
	}
	count := binary.BigEndian.Uint64(er.scratch[:8])
	want := er.crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(er.r, sum[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return corrupt("truncated in the trailer")
		}
		return fmt.Errorf("tenantkv: read export file: %w", err)
	}
	if got := binary.BigEndian.Uint32(sum[:]); got != want {
		return corrupt("checksum %08x, computed %08x", got, want)
	}
	if count != er.records {
		return corrupt("trailer counts %d records, the file holds %d", count, er.records)
	}
	switch _, err := er.r.ReadByte(); {
	case err == nil:
		return corrupt("data after the trailer")
	case !errors.Is(err, io.EOF):
		return fmt.Errorf("tenantkv: read export file: %w", err)
	}
	return io.EOF
}
