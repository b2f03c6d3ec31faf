package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tenantkv/tenantkv/client"
	"github.com/tenantkv/tenantkv/server"
)

var snapshotSaveCommand = &command{
	path:    "snapshot save",
	args:    "FILE [--rate SIZE]",
	summary: "back up the whole cluster into FILE (consistent, checksummed, from the leader)",
	long: `The snapshot holds the whole replicated state (every tenant and its keys, the
tenant map, token hashes, members and cluster metadata) as of one instant
after every write acknowledged before the command started. The leader takes
it after a read barrier, without stopping writes, and streams it in chunks;
it is written to FILE.part and renamed to FILE once complete and synced, so
FILE is either the old file or a whole new one. The file's format is in
docs/OPERATIONS.md ("Backups"): a header with the state's raft index and term,
cluster format and store checksum, the state, and a SHA-256 trailer. It needs
an operator token. On a terminal, stderr shows a progress bar. Unlike other
commands, save has no time limit unless --timeout is given. --rate caps its
speed (such as 20MiB a second), leaving more of the leader to the writes.
`,
	minArgs: 1, maxArgs: 1,
	setup: setupSnapshotSave,
}

var snapshotVerifyCommand = &command{
	path:    "snapshot verify",
	args:    "FILE",
	summary: "check a snapshot file end to end and describe it, without restoring it",
	long: `Reads the whole file and checks everything a restore checks before it writes:
the header, the file's length, the SHA-256 of the state, every record, and the
state's raft index and store checksum against the header's. Exit status 0 means
a restore of it will not refuse it.
`,
	minArgs: 1, maxArgs: 1,
	setup: noFlags(snapshotVerify),
}

var snapshotRestoreCommand = &command{
	path:    "snapshot restore",
	args:    "FILE --data DIR --node-id ID [--raft ADDR] [--raft-log KIND]",
	summary: "write a new data directory from a snapshot, for a new one-node cluster",
	long: `Writes DIR (which must not exist or be empty) so that 'tenantkv serve --data DIR
--raft ADDR' starts a new cluster of this one node holding exactly the
snapshot's state; other nodes then join it as usual. The old cluster's
operator and tenant tokens work on it (the snapshot holds their hashes; no
new operator token is made). The whole file is read and checked first (as
'snapshot verify' does): a damaged or truncated file is refused and DIR is not
touched. Then the state is written and checked again (the restored store's
checksum must be the snapshot's); if anything fails, what was written is
removed. --raft is the raft address the node will have (its --raft, or
--raft-advertise), default 127.0.0.1:7401. On a terminal, stderr shows a
progress bar. It does not talk to any cluster.
`,
	minArgs: 1, maxArgs: 1,
	setup: setupSnapshotRestore,
}

func setupSnapshotSave(fs *flag.FlagSet, _ func(string) string) runFunc {
	var rate int64
	fs.Func("rate", "save at most `SIZE` a second (such as 20MiB); 0: as fast as it goes", func(v string) error {
		n, err := parseSize(v)
		if err == nil {
			rate = n
		}
		return err
	})
	return func(ctx context.Context, x *cli, args []string) error { return snapshotSave(ctx, x, args[0], rate) }
}

func snapshotSave(ctx context.Context, x *cli, path string, rate int64) error {
	if !x.set["timeout"] {
		x.g.timeout = 0
	}
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(part)
		}
	}()
	bar := newByteBar(x.stderr, "snapshot save")
	var sum *client.SnapshotSummary
	err = x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		var err error
		sum, err = db.SaveSnapshot(ctx, f, &client.SnapshotOptions{
			Rate:     rate,
			Progress: func(p client.SnapshotProgress) { bar.update("", p.Bytes, p.EstimatedBytes) },
		})
		bar.finish(err == nil)
		return err
	})
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	if err := os.Rename(part, path); err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	ok = true
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	h := sum.Header
	if x.g.json {
		return writeJSON(x.stdout, snapshotJSONOf(path, &h, sum.NodeID))
	}
	fmt.Fprintf(x.stdout, "saved snapshot %s: %s (%d bytes), %d records, applied index %d, term %d, cluster format %d, store checksum %016x, taken on node %s\n",
		path, formatBytes(uint64(h.FileSize())), h.FileSize(), h.Records, h.AppliedIndex, h.Term, h.Format, h.Checksum, sum.NodeID)
	return nil
}

// snapshotJSON is a snapshot file described for --json.
type snapshotJSON struct {
	File         string    `json:"file"`
	Bytes        int64     `json:"bytes"`
	Records      uint64    `json:"records"`
	AppliedIndex uint64    `json:"applied_index"`
	Term         uint64    `json:"term"`
	Format       uint32    `json:"cluster_format"`
	Checksum     string    `json:"store_checksum"`
	CreatedAt    time.Time `json:"created_at"`
	NodeID       string    `json:"node_id,omitempty"`
	DataDir      string    `json:"data_dir,omitempty"`
	RaftAddr     string    `json:"raft_addr,omitempty"`
}

func snapshotJSONOf(path string, h *client.SnapshotHeader, node string) snapshotJSON {
	return snapshotJSON{File: path, Bytes: h.FileSize(), Records: h.Records, AppliedIndex: h.AppliedIndex, Term: h.Term,
		Format: h.Format, Checksum: fmt.Sprintf("%016x", h.Checksum), CreatedAt: h.CreatedAt, NodeID: node}
}

// snapshotFile is an open snapshot file and its header.
type snapshotFile struct {
	f      *os.File
	size   int64
	header *client.SnapshotHeader
}

func openSnapshot(path string) (*snapshotFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	h, _, err := client.OpenSnapshotFile(f, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &snapshotFile{f: f, size: st.Size(), header: h}, nil
}

// body returns a fresh reader of the file's body (digest checked at its
// end), counting into bar's phase.
func (s *snapshotFile) body(ctx context.Context, bar *byteBar, phase string) (io.Reader, error) {
	_, body, err := client.OpenSnapshotFile(s.f, s.size)
	if err != nil {
		return nil, err
	}
	return &progressReader{ctx: ctx, r: body, total: s.header.Size, report: func(n, total uint64) { bar.update(phase, n, total) }}, nil
}

func (s *snapshotFile) options(dir, id, raftAddr, raftLog string) server.RestoreOptions {
	h := s.header
	return server.RestoreOptions{DataDir: dir, NodeID: id, RaftAddr: raftAddr, RaftLog: raftLog,
		AppliedIndex: h.AppliedIndex, Term: h.Term, Format: h.Format, Checksum: h.Checksum, Size: h.Size}
}

// verify reads the whole file and checks it as a restore would.
func (s *snapshotFile) verify(ctx context.Context, path string, bar *byteBar, o server.RestoreOptions) error {
	body, err := s.body(ctx, bar, "verify")
	if err != nil {
		return err
	}
	sum, err := server.VerifyBackup(body, o)
	if err != nil {
		return fileError(path, err)
	}
	if sum.Records != s.header.Records {
		return fmt.Errorf("%s: %w: %d records, the header says %d", path, client.ErrCorruptSnapshot, sum.Records, s.header.Records)
	}
	return nil
}

func snapshotVerify(ctx context.Context, x *cli, args []string) error {
	path := args[0]
	s, err := openSnapshot(path)
	if err != nil {
		return err
	}
	defer s.f.Close()
	bar := newByteBar(x.stderr, "snapshot")
	// The node ID and address are the restore's; any valid ones do here.
	err = s.verify(ctx, path, bar, s.options("", "verify", "", ""))
	bar.finish(err == nil)
	if err != nil {
		return err
	}
	h := s.header
	if x.g.json {
		return writeJSON(x.stdout, snapshotJSONOf(path, h, ""))
	}
	fmt.Fprintf(x.stdout, "snapshot %s is sound: %s (%d bytes), %d records, applied index %d, term %d, cluster format %d, store checksum %016x, saved %s\n",
		path, formatBytes(uint64(h.FileSize())), h.FileSize(), h.Records, h.AppliedIndex, h.Term, h.Format, h.Checksum, h.CreatedAt.Format(time.RFC3339))
	return nil
}

func setupSnapshotRestore(fs *flag.FlagSet, _ func(string) string) runFunc {
	var dir, id, raftAddr, raftLog string
	fs.StringVar(&dir, "data", "", "the data `DIR` to write; it must not exist or be empty")
	fs.StringVar(&id, "node-id", "", "the restored node's `ID`")
	fs.StringVar(&raftAddr, "raft", server.DefaultRestoreRaftAddr, "the raft `ADDR` (host:port) the node will have: its serve --raft, or --raft-advertise")
	fs.StringVar(&raftLog, "raft-log", "", "store of the raft log: `KIND` pebble or bolt; empty: pebble")
	return func(ctx context.Context, x *cli, args []string) error {
		path := args[0]
		if dir == "" {
			return usagef(x.cmd, "--data: no directory given")
		}
		if id == "" {
			return usagef(x.cmd, "--node-id: no node ID given")
		}
		if err := server.CheckRestoreDir(dir); err != nil {
			return err
		}
		s, err := openSnapshot(path)
		if err != nil {
			return err
		}
		defer s.f.Close()
		o := s.options(dir, id, raftAddr, raftLog)
		bar := newByteBar(x.stderr, "snapshot restore")
		// Everything is checked before anything is written.
		if err := s.verify(ctx, path, bar, o); err != nil {
			bar.finish(false)
			return err
		}
		body, err := s.body(ctx, bar, "write")
		if err == nil {
			err = server.RestoreBackup(ctx, body, o)
		}
		bar.finish(err == nil)
		if err != nil {
			return fmt.Errorf("%w (nothing is left in %s)", fileError(path, err), dir)
		}
		h := s.header
		if x.g.json {
			j := snapshotJSONOf(path, h, id)
			j.DataDir, j.RaftAddr = dir, raftAddr
			return writeJSON(x.stdout, j)
		}
		fmt.Fprintf(x.stdout, "restored snapshot %s into %s: node %s, raft address %s, applied index %d, store checksum %016x; start it with: tenantkv serve --data %s --raft %s (the old cluster's tokens work)\n",
			path, dir, id, raftAddr, h.AppliedIndex, h.Checksum, dir, raftAddr)
		return nil
	}
}

// fileError says which file err is about, and calls a backup the server
// refuses what it is: a corrupt snapshot file.
func fileError(path string, err error) error {
	if errors.Is(err, server.ErrCorruptBackup) {
		return fmt.Errorf("%s: %w: %s", path, client.ErrCorruptSnapshot, strings.TrimPrefix(err.Error(), server.ErrCorruptBackup.Error()+": "))
	}
	return fmt.Errorf("%s: %w", path, err)
}

// progressReader reports the bytes read through it and fails once ctx has
// ended.
type progressReader struct {
	ctx    context.Context
	r      io.Reader
	n      uint64
	total  uint64
	report func(n, total uint64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.r.Read(b)
	p.n += uint64(n)
	p.report(p.n, p.total)
	return n, err
}

// byteBar draws the progress of a save or a restore in bytes on one line
// of a terminal, at most ten times a second; to anything but a terminal it
// draws nothing.
type byteBar struct {
	w        io.Writer // nil: draw nothing
	label    string
	phase    string
	n, total uint64
	last     time.Time
	drawn    bool
}

func newByteBar(w io.Writer, label string) *byteBar {
	if !isTTY(w) {
		return &byteBar{}
	}
	return &byteBar{w: w, label: label}
}

func (b *byteBar) update(phase string, n, total uint64) {
	if b.w == nil {
		return
	}
	if b.drawn && phase != b.phase {
		b.draw()
		fmt.Fprintln(b.w)
	}
	changed := phase != b.phase
	b.phase, b.n, b.total = phase, n, total
	if now := time.Now(); changed || now.Sub(b.last) >= 100*time.Millisecond {
		b.last = now
		b.draw()
	}
}

func (b *byteBar) draw() {
	fmt.Fprintf(b.w, "\r%s\x1b[K", renderBytes(strings.TrimSpace(b.label+" "+b.phase), b.n, b.total, 30))
	b.drawn = true
}

func (b *byteBar) finish(ok bool) {
	if b.w == nil || !b.drawn {
		return
	}
	if ok {
		b.total = b.n // done: what an estimate said no longer matters
		b.draw()
	}
	fmt.Fprintln(b.w)
}

// renderBytes renders one line, such as
// "snapshot save [=========>          ]  45% 1.1 GiB of 2.4 GiB". Without a
// total it shows the bytes only; past a total that was too low, a full bar.
func renderBytes(label string, n, total uint64, width int) string {
	if total == 0 {
		return fmt.Sprintf("%s %s", label, formatBytes(n))
	}
	frac := min(float64(n)/float64(total), 1)
	full := int(frac * float64(width))
	bar := strings.Repeat("=", full)
	if full < width {
		bar += ">" + strings.Repeat(" ", width-full-1)
	}
	return fmt.Sprintf("%s [%s] %3d%% %s of %s", label, bar, int(frac*100), formatBytes(n), formatBytes(max(n, total)))
}

// syncDir syncs a directory, making a rename in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
