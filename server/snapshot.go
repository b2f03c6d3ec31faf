package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantkv/tenantkv/raft/command"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/raft"
	"github.com/tenantkv/tenantkv/store"
)

// # Backups of the whole cluster (OpSnapshotSave, `tenantkv snapshot`)
//
// Saving: the first request takes a backup on the leader (raft.Node.Backup:
// a read barrier, then a store snapshot, which blocks no write) and opens a
// session over its whole-store stream; every request, the first included,
// is answered with the next chunk of the stream (at most the request's
// limit, at most maxSnapshotChunk), the last one with the state's record
// count and store checksum. The client pulls, so a node holds one chunk per
// save at a time, charged to the connection's memory budget like any
// answer (answerReserve), and a slow client only slows its own save. A
// session lives on the node that opened it, and ends with its last chunk,
// after snapshotIdle without a request, or when the node closes. What a
// long save costs the node is the snapshot it pins: Pebble keeps the
// versions the snapshot sees until it is released, so the store grows by
// what is overwritten or deleted meanwhile.
//
// Restoring (RestoreBackup): a data directory from which `serve` starts a
// new one-node cluster holding exactly the backup's state: the store and
// the raft directory raft.RestoreNode writes from the stream (the server
// itself may only read stores), the node ID. It is refused unless the
// directory is new or empty, and it is checked before it is declared done:
// the store's applied index and checksum must be the backup's.

const (
	// snapshotIdle is how long a save's session lives without a request.
	snapshotIdle = time.Minute
	// maxSnapshotSaves caps the saves in progress on one node: each pins
	// a store snapshot.
	maxSnapshotSaves = 2
	// defaultSnapshotChunk and maxSnapshotChunk bound a chunk: below
	// pageAnswerReserve, which the request reserves for its answer.
	defaultSnapshotChunk = 1 << 20
	maxSnapshotChunk     = maxScanBytes
)

// snapshotSession is one save in progress.
type snapshotSession struct {
	backup   *raft.Backup
	stream   *store.StoreStream
	info     wire.SnapshotInfo
	started  time.Time
	sent     uint64
	lastUsed time.Time
	busy     bool          // a request is reading a chunk
	doomed   bool          // close once the request in progress is done
	gone     chan struct{} // closed when the session is closed
}

// close releases the session's stream and snapshot. Called once, with the
// sessions' lock held and no request using it.
func (s *snapshotSession) close() {
	_ = s.stream.Close()
	s.backup.Close()
	close(s.gone)
}

// snapshotSaves holds the saves in progress. It is safe for concurrent use.
type snapshotSaves struct {
	mu       sync.Mutex
	sessions map[string]*snapshotSession
	// idle, in nanoseconds, replaces snapshotIdle in tests.
	idle atomic.Int64
}

func (m *snapshotSaves) idleTimeout() time.Duration {
	if d := time.Duration(m.idle.Load()); d > 0 {
		return d
	}
	return snapshotIdle
}

// open registers sess; it is closed if it cannot be.
func (m *snapshotSaves) open(sess *snapshotSession) (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		sess.close()
		return "", err
	}
	id := hex.EncodeToString(b[:])
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sessions == nil {
		m.sessions = map[string]*snapshotSession{}
	}
	if len(m.sessions) >= maxSnapshotSaves {
		sess.close()
		return "", fmt.Errorf("%w: %d snapshot saves in progress on this node already", ErrRateLimited, maxSnapshotSaves)
	}
	sess.busy, sess.lastUsed = true, time.Now()
	m.sessions[id] = sess
	return id, nil
}

func (m *snapshotSaves) acquire(id string) (*snapshotSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	sess, ok := m.sessions[id]
	if !ok || sess.busy || sess.doomed {
		return nil, fmt.Errorf("%w: no snapshot save %q on this node (it finished, failed, sat idle over %v, or its node restarted)",
			ErrCursorNotFound, id, m.idleTimeout())
	}
	sess.busy = true
	return sess, nil
}

// release ends a request's use of sess, closing it when done or doomed.
func (m *snapshotSaves) release(id string, sess *snapshotSession, done bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	sess.busy, sess.lastUsed = false, time.Now()
	if done || sess.doomed {
		delete(m.sessions, id)
		sess.close()
	}
}

// expire closes sess if it sat idle too long, or at once when force is
// set (a request in progress closes it when it is done). It reports
// whether the session is gone or doomed.
func (m *snapshotSaves) expire(id string, sess *snapshotSession, force bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-sess.gone:
		return true
	default:
	}
	if sess.busy {
		sess.doomed = sess.doomed || force
		return sess.doomed
	}
	if force || time.Since(sess.lastUsed) > m.idleTimeout() {
		delete(m.sessions, id)
		sess.close()
		return true
	}
	return false
}

// watchSnapshotSave closes a session left idle, and every one when the
// node closes.
func (s *Server) watchSnapshotSave(id string, sess *snapshotSession) {
	defer s.wg.Done()
	t := time.NewTicker(s.saves.idleTimeout() / 4)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			s.saves.expire(id, sess, true)
			return
		case <-sess.gone:
			return
		case <-t.C:
			if s.saves.expire(id, sess, false) {
				s.logger.Warn("snapshot save abandoned: no request for its next chunk", "save", id, "idle", s.saves.idleTimeout(), "sent_bytes", sess.sent)
				return
			}
		}
	}
}

// saveSnapshot serves one chunk of a backup (OpSnapshotSave): the first,
// taking the backup, when the request has no cursor.
func (s *Server) saveSnapshot(ctx context.Context, req *wire.Request) (*wire.Response, error) {
	var id string
	var sess *snapshotSession
	var err error
	if req.Cursor == "" {
		if sess, err = s.startSnapshotSave(ctx); err != nil {
			return nil, err
		}
		if id, err = s.saves.open(sess); err != nil {
			return nil, err
		}
		s.wg.Add(1) // a request is in progress: the server's group is not waited on yet
		go s.watchSnapshotSave(id, sess)
		s.logger.Info("snapshot save started", "save", id, "applied_index", sess.info.AppliedIndex, "term", sess.info.Term,
			"format", sess.info.Format, "estimated_bytes", sess.info.EstimatedBytes)
	} else {
		id = req.Cursor
		if sess, err = s.saves.acquire(id); err != nil {
			return nil, err
		}
	}
	done := true
	defer func() { s.saves.release(id, sess, done) }()

	size := req.Limit
	if size <= 0 {
		size = defaultSnapshotChunk
	}
	buf := make([]byte, min(size, maxSnapshotChunk))
	n, err := io.ReadFull(sess.stream, buf)
	last := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	if err != nil && !last {
		s.logger.Error("snapshot save failed", "save", id, "sent_bytes", sess.sent, "error", err)
		return nil, fmt.Errorf("snapshot save: %w", err)
	}
	sess.sent += uint64(n)
	info := sess.info
	resp := &wire.Response{Value: buf[:n], Snapshot: &info}
	if !last {
		done = false
		resp.More, resp.Next = true, id
		return resp, nil
	}
	if info.Checksum, err = sess.stream.Checksum(); err != nil {
		return nil, fmt.Errorf("snapshot save: %w", err)
	}
	info.Records = sess.stream.Records()
	s.logger.Info("snapshot save finished", "save", id, "applied_index", info.AppliedIndex, "bytes", sess.sent,
		"records", info.Records, "took", time.Since(sess.started).Round(time.Millisecond))
	return resp, nil
}

// startSnapshotSave takes the backup a new save streams.
func (s *Server) startSnapshotSave(ctx context.Context) (*snapshotSession, error) {
	b, err := s.node.Backup(ctx)
	if err != nil {
		return nil, err
	}
	stream, err := b.NewStream()
	if err != nil {
		b.Close()
		return nil, err
	}
	est, _ := s.store.EstimateSize() // only for progress bars
	return &snapshotSession{
		backup: b, stream: stream, started: time.Now(), gone: make(chan struct{}),
		info: wire.SnapshotInfo{NodeID: s.cfg.NodeID, AppliedIndex: b.AppliedIndex(), Term: b.Term,
			Format: uint32(b.Format()), EstimatedBytes: est},
	}, nil
}

// ErrCorruptBackup is returned by VerifyBackup and RestoreBackup for a
// backup stream that is not sound or not the state its header describes.
var ErrCorruptBackup = errors.New("tenantkv: corrupt backup")

// corruptBackup wraps why a backup is refused in ErrCorruptBackup.
func corruptBackup(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	msg = strings.ReplaceAll(msg, store.ErrCorruptStream.Error()+": ", "")
	return fmt.Errorf("%w: %s", ErrCorruptBackup, msg)
}

// maxNodeID bounds the node ID a restore accepts.
const maxNodeID = 255

// DefaultRestoreRaftAddr is the raft address a restored node is told it
// has when none is given: serve's default --raft.
const DefaultRestoreRaftAddr = "127.0.0.1:7401"

// RestoreOptions say where and as which node a backup is restored, and
// what the backup file says of the state it holds (its header), which the
// stream must match.
type RestoreOptions struct {
	// DataDir is the data directory to write; it must not exist or be
	// empty.
	DataDir string
	// NodeID is the restored node's ID, and RaftAddr the raft address
	// others will dial (what it is started with as --raft, or
	// --raft-advertise); empty means DefaultRestoreRaftAddr.
	NodeID, RaftAddr string
	// RaftLog names the raft log's store (raft.RaftLogPebble or
	// raft.RaftLogBolt); empty means raft.DefaultRaftLog.
	RaftLog string
	// AppliedIndex, Term, Format, Checksum and Size are the backup's: its
	// state's applied index, that entry's term, its cluster format, its
	// store checksum and the length of its stream in bytes.
	AppliedIndex, Term uint64
	Format             uint32
	Checksum           uint64
	Size               uint64
	// Logger receives the store's logs; nil discards them.
	Logger *slog.Logger
}

func (o *RestoreOptions) raftAddr() string {
	if o.RaftAddr == "" {
		return DefaultRestoreRaftAddr
	}
	return o.RaftAddr
}

// validate checks the options that do not depend on the stream.
func (o *RestoreOptions) validate() error {
	if o.NodeID == "" || len(o.NodeID) > maxNodeID || strings.IndexFunc(o.NodeID, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return fmt.Errorf("server: restore: node ID %q: want 1 to %d bytes without spaces or control characters", o.NodeID, maxNodeID)
	}
	if host, port, err := net.SplitHostPort(o.raftAddr()); err != nil || host == "" || port == "" || port == "0" {
		return fmt.Errorf("server: restore: raft address %q is not a host:port other nodes can dial", o.raftAddr())
	}
	if err := raft.ValidRaftLog(o.RaftLog); err != nil {
		return fmt.Errorf("server: restore: %w", err)
	}
	if command.Format(o.Format) > command.MaxFormat {
		return fmt.Errorf("server: restore: the backup is of cluster format %d, which this build (formats up to %d) does not know: restore it with a newer release",
			o.Format, command.MaxFormat)
	}
	if o.AppliedIndex == 0 || o.Term == 0 {
		return fmt.Errorf("server: restore: the backup names applied index %d, term %d", o.AppliedIndex, o.Term)
	}
	return nil
}

// CheckRestoreDir reports whether dir can receive a restore: it must not
// exist, or be an empty directory.
func CheckRestoreDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("server: restore into %s: %w", dir, err)
	case len(entries) > 0:
		return fmt.Errorf("server: restore into %s: the directory is not empty (a restore writes a new data directory; it never overwrites one)", dir)
	}
	return nil
}

// BackupSummary describes a backup's stream read to its end.
type BackupSummary struct {
	// Records counts the stream's records; AppliedIndex and Checksum are
	// those of the state it holds.
	Records      uint64
	AppliedIndex uint64
	Checksum     uint64
}

// VerifyBackup reads body, a backup's whole-store stream, to its end and
// checks it as a restore would, writing nothing: its structure and CRC,
// every record, nothing after it, and that it is the state o describes
// (length, applied index and store checksum). A body whose reader verifies
// a digest of its own at its end (the backup file's) is read to that end.
func VerifyBackup(body io.Reader, o RestoreOptions) (BackupSummary, error) {
	if err := o.validate(); err != nil {
		return BackupSummary{}, err
	}
	sum, err := store.VerifyStoreStream(body)
	if err != nil {
		if errors.Is(err, store.ErrCorruptStream) {
			return BackupSummary{}, corruptBackup("the state: %v", err)
		}
		return BackupSummary{}, fmt.Errorf("server: verify backup: %w", err)
	}
	out := BackupSummary{Records: sum.Records, AppliedIndex: sum.AppliedIndex, Checksum: sum.Checksum}
	if err := checkStreamEnd(body); err != nil {
		return out, err
	}
	if sum.Bytes != o.Size {
		return out, corruptBackup("the state is %d bytes long, the header says %d", sum.Bytes, o.Size)
	}
	return out, o.matches(out)
}

// matches checks that a state is the one the options describe.
func (o *RestoreOptions) matches(s BackupSummary) error {
	if s.AppliedIndex != o.AppliedIndex {
		return corruptBackup("the state is at applied index %d, the header says %d", s.AppliedIndex, o.AppliedIndex)
	}
	if s.Checksum != o.Checksum {
		return corruptBackup("the state's store checksum is %016x, the header says %016x", s.Checksum, o.Checksum)
	}
	return nil
}

// checkStreamEnd reads what follows a store stream in body: nothing may,
// and reaching the end lets body's own check run.
func checkStreamEnd(body io.Reader) error {
	n, err := io.Copy(io.Discard, body)
	if err != nil {
		return fmt.Errorf("server: backup: %w", err)
	}
	if n > 0 {
		return corruptBackup("%d bytes follow the state", n)
	}
	return nil
}

// RestoreBackup writes, from body (a backup's whole-store stream) and o, a
// data directory from which `serve --data DIR` starts a new one-node
// cluster holding exactly the backup's state: every tenant and its data,
// the tenant map, tokens (the old cluster's operator tokens work), member
// records and cluster metadata; its raft configuration is this node alone,
// at o's raft address. It refuses a DataDir that exists and is not empty.
// The stream is checked as it is read and the result once written (store
// checksum, applied index; the state machine restores it, as raft's
// snapshot installs, raft.RestoreNode); on any failure,
// or when ctx ends, whatever it wrote is removed. Call VerifyBackup first to
// refuse a damaged backup before anything is written.
func RestoreBackup(ctx context.Context, body io.Reader, o RestoreOptions) (err error) {
	if err := o.validate(); err != nil {
		return err
	}
	if err := CheckRestoreDir(o.DataDir); err != nil {
		return err
	}
	_, statErr := os.Stat(o.DataDir)
	created := errors.Is(statErr, os.ErrNotExist)
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("server: restore: %w", err)
	}
	defer func() {
		if err == nil {
			return
		}
		if created {
			_ = os.RemoveAll(o.DataDir)
			return
		}
		for _, name := range []string{"store", "raft", "node-id"} {
			_ = os.RemoveAll(filepath.Join(o.DataDir, name))
		}
	}()
	if _, err := loadNodeID(o.DataDir, o.NodeID); err != nil {
		return err
	}
	// Exactly the stream goes to the store and the snapshot; nothing may
	// follow it in body.
	stream := io.LimitReader(&ctxReader{ctx: ctx, r: body}, int64(o.Size))
	got, err := raft.RestoreNode(raft.RestoreTarget{
		Dir: filepath.Join(o.DataDir, "raft"), ID: o.NodeID, RaftAddr: o.raftAddr(),
		Index: o.AppliedIndex, Term: o.Term, RaftLog: o.RaftLog,
		StoreDir: filepath.Join(o.DataDir, "store"), StoreOptions: &store.Options{Logger: o.Logger}, Logger: o.Logger,
	}, stream)
	switch {
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("server: restore: %w", ctx.Err())
	case errors.Is(err, store.ErrCorruptStream):
		return corruptBackup("the state: %v", err)
	case err != nil:
		return fmt.Errorf("server: restore: %w", err)
	}
	if err := checkStreamEnd(body); err != nil {
		return err
	}
	if err := o.matches(BackupSummary{AppliedIndex: got.AppliedIndex, Checksum: got.Checksum}); err != nil {
		return err
	}
	return syncDir(o.DataDir)
}

// ctxReader fails reads once ctx has ended.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// syncDir syncs a directory, making the names created in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("server: restore: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("server: restore: sync %s: %w", dir, err)
	}
	return nil
}
