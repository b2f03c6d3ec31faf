package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// The snapshot file format, version 1: a backup of a whole cluster, which
// DB.SaveSnapshot writes and OpenSnapshotFile reads (`tenantkv snapshot
// save` and `restore`). Integers are big-endian.
//
//	header       72 bytes
//	  magic        8 bytes   "TKVSNAP\n"
//	  version      2 bytes   1
//	  flags        2 bytes   0
//	  header CRC   4 bytes   CRC-32C of the 72 header bytes with these 4 zero
//	  body size    8 bytes   the body's length in bytes
//	  applied      8 bytes   the raft index of the state
//	  term         8 bytes   that entry's raft term
//	  format       4 bytes   the cluster format of the state
//	  reserved     4 bytes   0
//	  checksum     8 bytes   the store checksum of the state (CRC-64)
//	  records      8 bytes   the number of records of the body
//	  created      8 bytes   when the save began, Unix nanoseconds
//	body         the whole-store stream of the state (the format of raft
//	             snapshots: its own header, records and CRC-32C trailer)
//	trailer      32 bytes  SHA-256 of the body
//
// Nothing follows the trailer. A reader checks the header (magic, version,
// zero flags and reserved bytes, its CRC), that the file is exactly as long
// as the header says, and the SHA-256 of the body, which it computes while
// the body is read; a restore reads the whole file once before it writes
// anything. A truncated file, or one with any byte changed, is refused.

// SnapshotMagic starts every snapshot file.
const SnapshotMagic = "TKVSNAP\n"

// SnapshotVersion is the version of the snapshot format this package
// writes and reads.
const SnapshotVersion = 1

const (
	snapshotHeaderSize  = 72
	snapshotTrailerSize = sha256.Size
)

// ErrCorruptSnapshot: a snapshot file is not sound (truncated, a wrong
// length, checksum or header, or a body that is not a store stream).
var ErrCorruptSnapshot = errors.New("tenantkv: corrupt snapshot file")

func corruptSnapshot(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruptSnapshot, fmt.Sprintf(format, args...))
}

// SnapshotHeader is what a snapshot file's header says of the state it
// holds.
type SnapshotHeader struct {
	// Size is the body's length in bytes.
	Size uint64
	// AppliedIndex is the raft index of the state, Term that entry's term
	// and Format the cluster format at it.
	AppliedIndex uint64
	Term         uint64
	Format       uint32
	// Checksum is the store checksum of the state: what a node restored
	// from the file computes over its store.
	Checksum uint64
	// Records is the number of key-value records of the body.
	Records uint64
	// CreatedAt is when the save began.
	CreatedAt time.Time
}

// FileSize returns the length of the file the header belongs to.
func (h *SnapshotHeader) FileSize() int64 {
	return int64(snapshotHeaderSize + h.Size + snapshotTrailerSize)
}

func (h *SnapshotHeader) encode() []byte {
	b := make([]byte, snapshotHeaderSize)
	copy(b, SnapshotMagic)
	binary.BigEndian.PutUint16(b[8:], SnapshotVersion)
	binary.BigEndian.PutUint64(b[16:], h.Size)
	binary.BigEndian.PutUint64(b[24:], h.AppliedIndex)
	binary.BigEndian.PutUint64(b[32:], h.Term)
	binary.BigEndian.PutUint32(b[40:], h.Format)
	binary.BigEndian.PutUint64(b[48:], h.Checksum)
	binary.BigEndian.PutUint64(b[56:], h.Records)
	binary.BigEndian.PutUint64(b[64:], uint64(h.CreatedAt.UnixNano()))
	binary.BigEndian.PutUint32(b[12:], crc32.Checksum(b, castagnoli))
	return b
}

func decodeSnapshotHeader(b []byte) (*SnapshotHeader, error) {
	if string(b[:8]) != SnapshotMagic {
		return nil, corruptSnapshot("not a tenantkv snapshot file (magic %q)", b[:8])
	}
	if v := binary.BigEndian.Uint16(b[8:]); v != SnapshotVersion {
		return nil, corruptSnapshot("snapshot format version %d, this build reads version %d", v, SnapshotVersion)
	}
	sum := binary.BigEndian.Uint32(b[12:])
	zeroed := bytes.Clone(b)
	binary.BigEndian.PutUint32(zeroed[12:], 0)
	if got := crc32.Checksum(zeroed, castagnoli); got != sum {
		return nil, corruptSnapshot("header checksum %08x, computed %08x", sum, got)
	}
	if f := binary.BigEndian.Uint16(b[10:]); f != 0 {
		return nil, corruptSnapshot("unknown header flags %#x", f)
	}
	if r := binary.BigEndian.Uint32(b[44:]); r != 0 {
		return nil, corruptSnapshot("reserved header bytes %#x", r)
	}
	h := &SnapshotHeader{
		Size: binary.BigEndian.Uint64(b[16:]), AppliedIndex: binary.BigEndian.Uint64(b[24:]),
		Term: binary.BigEndian.Uint64(b[32:]), Format: binary.BigEndian.Uint32(b[40:]),
		Checksum: binary.BigEndian.Uint64(b[48:]), Records: binary.BigEndian.Uint64(b[56:]),
		CreatedAt: time.Unix(0, int64(binary.BigEndian.Uint64(b[64:]))).UTC(),
	}
	if h.Size > 1<<62 {
		return nil, corruptSnapshot("body size %d", h.Size)
	}
	return h, nil
}

// OpenSnapshotFile reads and checks the header of a snapshot file (r, of
// size bytes: a file shorter or longer than its header says is refused)
// and returns a reader of its body. The body reader computes the body's
// SHA-256 as it is read and, at the end, returns an error matching
// ErrCorruptSnapshot instead of io.EOF if it is not the trailer's: what it
// hands out before its end is unverified.
func OpenSnapshotFile(r io.ReaderAt, size int64) (*SnapshotHeader, io.Reader, error) {
	if size < snapshotHeaderSize+snapshotTrailerSize {
		return nil, nil, corruptSnapshot("%d bytes: shorter than a header and a trailer", size)
	}
	head := make([]byte, snapshotHeaderSize)
	if _, err := r.ReadAt(head, 0); err != nil {
		return nil, nil, fmt.Errorf("tenantkv: read snapshot file: %w", err)
	}
	h, err := decodeSnapshotHeader(head)
	if err != nil {
		return nil, nil, err
	}
	if size != h.FileSize() {
		return nil, nil, corruptSnapshot("the file has %d bytes, its header says %d (a body of %d): truncated or appended to", size, h.FileSize(), h.Size)
	}
	trailer := make([]byte, snapshotTrailerSize)
	if _, err := r.ReadAt(trailer, size-snapshotTrailerSize); err != nil {
		return nil, nil, fmt.Errorf("tenantkv: read snapshot file: %w", err)
	}
	body := &verifyingReader{r: io.NewSectionReader(r, snapshotHeaderSize, int64(h.Size)), h: sha256.New(), want: trailer}
	return h, body, nil
}

// verifyingReader hands out a body and checks its SHA-256 at its end.
type verifyingReader struct {
	r    io.Reader
	h    hash.Hash
	want []byte
	err  error // sticky, io.EOF once verified
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	if errors.Is(err, io.EOF) {
		if got := v.h.Sum(nil); !bytes.Equal(got, v.want) {
			err = corruptSnapshot("body SHA-256 %x, the trailer says %x", got, v.want)
		}
		v.err = err
	} else if err != nil {
		v.err = fmt.Errorf("tenantkv: read snapshot file: %w", err)
		err = v.err
	}
	return n, err
}

// SnapshotProgress reports how far a save has got: the body's bytes
// received, and about how many to expect (0 when unknown; the estimate may
// be off either way).
type SnapshotProgress struct {
	Bytes, EstimatedBytes uint64
}

// SnapshotOptions tune a save. The zero value (or nil) is a save as fast
// as the leader and the network allow.
type SnapshotOptions struct {
	// Progress, if not nil, is called after each chunk.
	Progress func(SnapshotProgress)
	// Rate, if positive, caps the save at about that many bytes a second,
	// on average since its start: the leader reads, checksums and sends
	// every byte, and a slower save leaves more of its CPU and disk to the
	// writes meanwhile (docs/OPERATIONS.md, "Backups").
	Rate int64
}

// SnapshotSummary describes a finished save.
type SnapshotSummary struct {
	Header SnapshotHeader // what the file's header holds
	NodeID string         // the node that took the backup (the leader then)
}

// snapshotChunk is the chunk size a save asks for: the server caps it at
// 4 MiB; a client whose MaxFrame is smaller asks for less.
const snapshotChunk = 4 << 20

// SaveSnapshot writes a backup of the whole replicated state to w in the
// snapshot file format (see OpenSnapshotFile): every tenant and its data,
// the tenant map, token hashes, members and cluster metadata, as of one
// instant after every write acknowledged before the call. It is taken on
// the leader (after a read barrier, without stopping writes) and fetched
// from it chunk by chunk, paced by opts.Rate. It needs an operator token.
//
// w is written from its start: the header last, once the body's size and
// checksums are known. If the leader changes or restarts during the save,
// the save starts over (at most three times), from w's start again, which
// needs w to be truncatable (an *os.File is) so that no tail of the earlier
// attempt is left. On an error, what was written to w is not a valid file.
func (db *DB) SaveSnapshot(ctx context.Context, w io.WriteSeeker, opts *SnapshotOptions) (*SnapshotSummary, error) {
	var o SnapshotOptions
	if opts != nil {
		o = *opts
	}
	_, canTruncate := w.(interface{ Truncate(int64) error })
	for attempt := 1; ; attempt++ {
		sum, err := db.saveSnapshotOnce(ctx, w, &o)
		var lost *lostSaveError
		if !errors.As(err, &lost) || attempt == 3 || !canTruncate {
			if lost != nil {
				return nil, lost.err
			}
			return sum, err
		}
		db.opts.Logger.Info("tenantkv: snapshot save lost its session; starting over", "attempt", attempt+1, "error", lost.err)
	}
}

// lostSaveError is a save whose session on the server is gone (leader
// change, restart, idle): it can be started over.
type lostSaveError struct{ err error }

func (e *lostSaveError) Error() string { return e.err.Error() }

func (db *DB) saveSnapshotOnce(ctx context.Context, w io.WriteSeeker, o *SnapshotOptions) (*SnapshotSummary, error) {
	if _, err := w.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("tenantkv: snapshot save: %w", err)
	}
	h := SnapshotHeader{CreatedAt: time.Now().UTC()}
	bw := bufio.NewWriterSize(w, 1<<20)
	if _, err := bw.Write(make([]byte, snapshotHeaderSize)); err != nil { // the header comes last
		return nil, fmt.Errorf("tenantkv: snapshot save: %w", err)
	}
	digest := sha256.New()
	limit := min(snapshotChunk, db.opts.MaxFrame-(64<<10))
	req := wire.Request{Op: wire.OpSnapshotSave, Limit: limit}
	var first wire.SnapshotInfo
	for chunk := 1; ; chunk++ {
		var resp wire.Response
		if err := db.do(ctx, &req, &resp, true); err != nil {
			if chunk > 1 && errors.Is(err, ErrInvalidArgument) {
				return nil, &lostSaveError{fmt.Errorf("snapshot save, chunk %d: %w (the save's snapshot is gone: the leader changed or restarted, or a minute passed between chunks)", chunk, err)}
			}
			return nil, fmt.Errorf("snapshot save, chunk %d: %w", chunk, err)
		}
		info := resp.Snapshot
		if info == nil {
			return nil, fmt.Errorf("%w: snapshot-save answer without snapshot information", ErrInternal)
		}
		if chunk == 1 {
			first = *info
		} else if info.AppliedIndex != first.AppliedIndex || info.NodeID != first.NodeID {
			return nil, fmt.Errorf("%w: chunk %d is of another backup (%s at %d, not %s at %d)", ErrInternal, chunk,
				info.NodeID, info.AppliedIndex, first.NodeID, first.AppliedIndex)
		}
		if _, err := bw.Write(resp.Value); err != nil {
			return nil, fmt.Errorf("tenantkv: snapshot save: %w", err)
		}
		digest.Write(resp.Value)
		h.Size += uint64(len(resp.Value))
		if o.Progress != nil {
			o.Progress(SnapshotProgress{Bytes: h.Size, EstimatedBytes: info.EstimatedBytes})
		}
		if !resp.More {
			h.AppliedIndex, h.Term, h.Format = info.AppliedIndex, info.Term, info.Format
			h.Checksum, h.Records = info.Checksum, info.Records
			break
		}
		if resp.Next == "" || len(resp.Value) == 0 {
			return nil, fmt.Errorf("%w: snapshot chunk %d has more to come but no cursor or no bytes", ErrInternal, chunk)
		}
		req = wire.Request{Op: wire.OpSnapshotSave, Cursor: resp.Next, Limit: limit}
		if err := pace(ctx, h.CreatedAt, h.Size, o.Rate); err != nil {
			return nil, err
		}
	}
	if _, err := bw.Write(digest.Sum(nil)); err != nil {
		return nil, fmt.Errorf("tenantkv: snapshot save: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("tenantkv: snapshot save: %w", err)
	}
	if t, ok := w.(interface{ Truncate(int64) error }); ok {
		if err := t.Truncate(h.FileSize()); err != nil {
			return nil, fmt.Errorf("tenantkv: snapshot save: %w", err)
		}
	}
	if _, err := w.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("tenantkv: snapshot save: %w", err)
	}
	if _, err := w.Write(h.encode()); err != nil {
		return nil, fmt.Errorf("tenantkv: snapshot save: %w", err)
	}
	if _, err := w.Seek(0, io.SeekEnd); err != nil {
		return nil, fmt.Errorf("tenantkv: snapshot save: %w", err)
	}
	return &SnapshotSummary{Header: h, NodeID: first.NodeID}, nil
}

// pace waits until n bytes since start are within rate bytes a second (no
// wait when rate is not positive), or ctx ends.
func pace(ctx context.Context, start time.Time, n uint64, rate int64) error {
	if rate <= 0 {
		return nil
	}
	d := time.Until(start.Add(time.Duration(float64(n) / float64(rate) * float64(time.Second))))
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
