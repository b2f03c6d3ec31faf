package fsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// This file replays a raft log recorded from a running node of the release
// before the state machine had a package of its own (testdata/recorded/
// README.md says how it was made) through a fresh Machine and store, and
// checks that it ends at the store checksum and applied index recorded with
// it. The recording is never regenerated: it pins the state machine's
// behaviour, since a change in what any recorded command does changes the
// checksum.

const (
	recordedDir   = "testdata/recorded"
	recordedMagic = "tenantkv recorded raft log v1\n"
	// Log types of the recorded entries, as hashicorp/raft numbers them
	// (raft.LogType; raft's TestRecordedLogTypes pins them).
	recordedLogCommand       uint8 = 0
	recordedLogNoop          uint8 = 1
	recordedLogBarrier       uint8 = 4
	recordedLogConfiguration uint8 = 5
	// recordedMaxEntry bounds one entry's data when reading, so that a
	// damaged file fails cleanly.
	recordedMaxEntry = 16 << 20
)

// recordedEntry is one raft log entry of a recording.
type recordedEntry struct {
	Index, Term uint64
	Type        uint8
	Data        []byte
}

// recordedSummary is what the recording says the replay must reach.
type recordedSummary struct {
	Checksum uint64 // store.Checksum after applying every entry
	Applied  uint64 // the store's applied index then
	Entries  int    // entries in recorded.log
}

// writeRecordedLog writes entries in the recording format.
func writeRecordedLog(w io.Writer, entries []recordedEntry) error {
	bw := bufio.NewWriter(w)
	bw.WriteString(recordedMagic)
	var buf []byte
	for _, e := range entries {
		buf = buf[:0]
		buf = binary.AppendUvarint(buf, e.Index)
		buf = binary.AppendUvarint(buf, e.Term)
		buf = append(buf, e.Type)
		buf = binary.AppendUvarint(buf, uint64(len(e.Data)))
		bw.Write(buf)
		bw.Write(e.Data)
	}
	return bw.Flush()
}

// readRecordedLog parses a recording. Indexes must increase by one from
// the first entry.
func readRecordedLog(r io.Reader) ([]recordedEntry, error) {
	br := bufio.NewReader(r)
	magic := make([]byte, len(recordedMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != recordedMagic {
		return nil, fmt.Errorf("recorded log: bad header %q", magic)
	}
	var out []recordedEntry
	for {
		idx, err := binary.ReadUvarint(br)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("recorded log: entry %d: index: %w", len(out), err)
		}
		e := recordedEntry{Index: idx}
		if e.Term, err = binary.ReadUvarint(br); err != nil {
			return nil, fmt.Errorf("recorded log: entry %d: term: %w", idx, noEOF(err))
		}
		if e.Type, err = br.ReadByte(); err != nil {
			return nil, fmt.Errorf("recorded log: entry %d: type: %w", idx, noEOF(err))
		}
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, fmt.Errorf("recorded log: entry %d: length: %w", idx, noEOF(err))
		}
		if n > recordedMaxEntry {
			return nil, fmt.Errorf("recorded log: entry %d: %d bytes", idx, n)
		}
		e.Data = make([]byte, n)
		if _, err := io.ReadFull(br, e.Data); err != nil {
			return nil, fmt.Errorf("recorded log: entry %d: data: %w", idx, noEOF(err))
		}
		if len(out) > 0 && idx != out[len(out)-1].Index+1 {
			return nil, fmt.Errorf("recorded log: entry %d follows %d", idx, out[len(out)-1].Index)
		}
		out = append(out, e)
	}
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// writeRecordedSummary writes the summary as "key value" lines; comments
// (lines starting with #) are for people.
func writeRecordedSummary(w io.Writer, s recordedSummary, comments []string) error {
	var b bytes.Buffer
	for _, c := range comments {
		fmt.Fprintf(&b, "# %s\n", c)
	}
	fmt.Fprintf(&b, "checksum %016x\napplied %d\nentries %d\n", s.Checksum, s.Applied, s.Entries)
	_, err := w.Write(b.Bytes())
	return err
}

// readRecordedSummary parses what writeRecordedSummary wrote.
func readRecordedSummary(r io.Reader) (recordedSummary, error) {
	var s recordedSummary
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			return s, fmt.Errorf("recorded summary: line %q", line)
		}
		var err error
		switch k {
		case "checksum":
			s.Checksum, err = strconv.ParseUint(v, 16, 64)
		case "applied":
			s.Applied, err = strconv.ParseUint(v, 10, 64)
		case "entries":
			s.Entries, err = strconv.Atoi(v)
		default:
			err = errors.New("unknown key")
		}
		if err != nil {
			return s, fmt.Errorf("recorded summary: line %q: %w", line, err)
		}
		seen[k] = true
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	if !seen["checksum"] || !seen["applied"] || !seen["entries"] {
		return s, errors.New("recorded summary: missing checksum, applied or entries")
	}
	return s, nil
}

// fsmEntries keeps the entries raft hands a BatchingFSM: commands and
// configurations (noops and barriers never reach it).
func fsmEntries(entries []recordedEntry) []recordedEntry {
	var out []recordedEntry
	for _, e := range entries {
		if e.Type == recordedLogCommand || e.Type == recordedLogConfiguration {
			out = append(out, e)
		}
	}
	return out
}

// machineEntries converts recorded entries to the machine's entries.
func machineEntries(entries []recordedEntry) []Entry {
	out := make([]Entry, len(entries))
	for i, e := range entries {
		out[i] = Entry{Index: e.Index, Command: e.Type == recordedLogCommand, Data: e.Data}
	}
	return out
}

// replayRecorded applies entries (as raft would hand them over: see
// fsmEntries) to a fresh store in dir, in batches whose sizes next
// chooses, and returns the store's checksum and applied index.
func replayRecorded(t *testing.T, dir string, entries []recordedEntry, next func(left int) int) (sum, applied uint64) {
	sum, applied, _ = replayResults(t, dir, entries, next)
	return sum, applied
}

// describeResult is one line of recorded.results: a command's result as
// the recording's release described it.
func describeRecordedResult(index uint64, r *Result) string {
	if r.Err != nil {
		return fmt.Sprintf("%d error %s", index, r.Err)
	}
	return fmt.Sprintf("%d ok tenant=%d version=%d swapped=%v", index, r.TenantID, r.Version, r.Swapped)
}

// replayResults is replayRecorded that also returns every command's result
// (batch members in order), described as in recorded.results.
func replayResults(t *testing.T, dir string, entries []recordedEntry, next func(left int) int) (sum, applied uint64, results []string) {
	t.Helper()
	st, err := store.Open(dir, nil)
	require.NoError(t, err)
	defer st.Close()
	f, err := New(st, nil, func(err error) { t.Errorf("state machine stopped: %v", err) })
	require.NoError(t, err)
	logs := machineEntries(fsmEntries(entries))
	for len(logs) > 0 {
		n := min(max(next(len(logs)), 1), len(logs))
		for i, r := range f.ApplyBatch(logs[:n]) {
			switch r := r.(type) {
			case *Result:
				if r.Err != nil && errors.Is(r.Err, ErrStopped) {
					t.Fatalf("entry %d: %v", logs[i].Index, r.Err)
				}
				results = append(results, describeRecordedResult(logs[i].Index, r))
			case *BatchResult:
				for _, sub := range r.Results {
					results = append(results, describeRecordedResult(logs[i].Index, sub))
				}
			}
		}
		logs = logs[n:]
	}
	sum, err = st.Checksum()
	require.NoError(t, err)
	applied, err = st.AppliedIndex()
	require.NoError(t, err)
	require.Equal(t, applied, f.AppliedIndex())
	return sum, applied, results
}

// recordedResults reads recorded.results: each command's result when the
// recording's release applied it.
func recordedResults(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(recordedDir, "recorded.results"))
	require.NoError(t, err)
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

func loadRecording(t *testing.T) ([]recordedEntry, recordedSummary) {
	t.Helper()
	lf, err := os.Open(filepath.Join(recordedDir, "recorded.log"))
	require.NoError(t, err)
	defer lf.Close()
	entries, err := readRecordedLog(lf)
	require.NoError(t, err)
	sf, err := os.Open(filepath.Join(recordedDir, "recorded.checksum"))
	require.NoError(t, err)
	defer sf.Close()
	sum, err := readRecordedSummary(sf)
	require.NoError(t, err)
	require.Len(t, entries, sum.Entries, "recorded.log against recorded.checksum")
	require.NotEmpty(t, entries)
	require.Equal(t, uint64(1), entries[0].Index, "the recording starts at the first entry")
	return entries, sum
}

// replaySeed returns TENANTKV_SEED or a fresh seed, and logs it.
func replaySeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TENANTKV_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "TENANTKV_SEED")
		seed = v
	}
	t.Logf("seed %d (TENANTKV_SEED=%d replays it)", seed, seed)
	return seed
}

func TestReplayRecordedLog(t *testing.T) {
	entries, want := loadRecording(t)
	rng := rand.New(rand.NewPCG(replaySeed(t), 0))
	cases := []struct {
		name string
		next func(left int) int
	}{
		{"one entry per batch", func(int) int { return 1 }},
		{"one batch", func(left int) int { return left }},
		{"random batches", func(int) int {
			if rng.IntN(4) == 0 {
				return 1 + rng.IntN(64)
			}
			return 1 + rng.IntN(8)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sum, applied, results := replayResults(t, t.TempDir(), entries, tc.next)
			require.Equal(t, recordedResults(t), results, "every command's result, as the recording's release gave it")
			require.Equal(t, want.Applied, applied, "applied index")
			require.Equal(t, fmt.Sprintf("%016x", want.Checksum), fmt.Sprintf("%016x", sum), "store checksum")
		})
	}
}

// TestReplayRecordedLogTwice replays the recording onto a store that
// already applied it, as a restart does: every entry is skipped.
func TestReplayRecordedLogTwice(t *testing.T) {
	entries, want := loadRecording(t)
	dir := t.TempDir()
	replayRecorded(t, dir, entries, func(left int) int { return 16 })
	sum, applied := replayRecorded(t, dir, entries, func(left int) int { return 7 })
	require.Equal(t, want.Applied, applied)
	require.Equal(t, want.Checksum, sum)
}

// TestReplayRecordedLogDetectsChange shows that the comparison would catch
// a change in behaviour: losing one command, or one command doing
// something else, ends at another checksum.
func TestReplayRecordedLogDetectsChange(t *testing.T) {
	entries, want := loadRecording(t)
	all := func(left int) int { return left }
	find := func(typ command.Type) int {
		for i, e := range entries {
			if e.Type == recordedLogCommand && len(e.Data) >= 2 && command.Type(e.Data[1]) == typ {
				return i
			}
		}
		t.Fatalf("no entry of command type %d in the recording", typ)
		return -1
	}
	// The last batch entry: its writes were applied.
	lastBatch := -1
	for i, e := range entries {
		if e.Type == recordedLogCommand && command.IsBatch(e.Data) {
			lastBatch = i
		}
	}
	require.GreaterOrEqual(t, lastBatch, 0, "the recording has a batch entry")

	t.Run("drop a batch entry", func(t *testing.T) {
		changed := append(append([]recordedEntry(nil), entries[:lastBatch]...), entries[lastBatch+1:]...)
		sum, _ := replayRecorded(t, t.TempDir(), changed, all)
		require.NotEqual(t, want.Checksum, sum)
	})
	t.Run("drop a CreateTenant", func(t *testing.T) {
		i := find(command.TypeCreateTenant)
		changed := append(append([]recordedEntry(nil), entries[:i]...), entries[i+1:]...)
		sum, _ := replayRecorded(t, t.TempDir(), changed, all)
		require.NotEqual(t, want.Checksum, sum)
	})
	// alter re-encodes the last TenantWrite to tenant alpha (whose writes
	// the workload keeps to the end) after change.
	alter := func(t *testing.T, change func(w *command.TenantWrite)) []recordedEntry {
		changed := append([]recordedEntry(nil), entries...)
		for i := len(changed) - 1; i >= 0; i-- {
			e := changed[i]
			if e.Type != recordedLogCommand || len(e.Data) < 2 || e.Data[0] != command.Version || command.Type(e.Data[1]) != command.TypeTenantWrite {
				continue
			}
			cmd, err := command.Decode(e.Data)
			require.NoError(t, err)
			if w := cmd.(*command.TenantWrite); w.TenantName == "alpha" && len(w.Ops) > 0 {
				change(w)
				data, err := command.Encode(w)
				require.NoError(t, err)
				changed[i].Data = data
				t.Logf("altered entry %d", e.Index)
				return changed
			}
		}
		t.Fatal("no TenantWrite to alpha in the recording")
		return nil
	}
	t.Run("alter a TenantWrite's value", func(t *testing.T) {
		sum, applied := replayRecorded(t, t.TempDir(), alter(t, func(w *command.TenantWrite) {
			w.Ops[len(w.Ops)-1].Value = append(w.Ops[len(w.Ops)-1].Value, '!')
		}), all)
		require.Equal(t, want.Applied, applied)
		require.NotEqual(t, want.Checksum, sum)
	})
	t.Run("alter a TenantWrite's clock", func(t *testing.T) {
		// The write history keeps the proposer's clock: replay must
		// carry the recorded one.
		sum, _ := replayRecorded(t, t.TempDir(), alter(t, func(w *command.TenantWrite) { w.At++ }), all)
		require.NotEqual(t, want.Checksum, sum)
	})
}

// TestRecordedLogFormat round-trips the format and refuses damage.
func TestRecordedLogFormat(t *testing.T) {
	in := []recordedEntry{
		{Index: 1, Term: 1, Type: recordedLogConfiguration, Data: []byte("conf")},
		{Index: 2, Term: 2, Type: recordedLogNoop, Data: []byte{}},
		{Index: 3, Term: 2, Type: recordedLogCommand, Data: bytes.Repeat([]byte{7}, 300)},
	}
	var b bytes.Buffer
	require.NoError(t, writeRecordedLog(&b, in))
	out, err := readRecordedLog(bytes.NewReader(b.Bytes()))
	require.NoError(t, err)
	require.Equal(t, in, out)
	for cut := len(recordedMagic); cut < b.Len(); cut++ {
		got, err := readRecordedLog(bytes.NewReader(b.Bytes()[:cut]))
		if err == nil {
			// Only a cut between entries reads cleanly, as a prefix.
			require.Equal(t, in[:len(got)], append([]recordedEntry{}, got...), "cut at %d", cut)
		}
	}
	_, err = readRecordedLog(strings.NewReader("not a recording\n"))
	require.Error(t, err)
	gap := append([]recordedEntry(nil), in[0], in[2])
	b.Reset()
	require.NoError(t, writeRecordedLog(&b, gap))
	_, err = readRecordedLog(&b)
	require.ErrorContains(t, err, "follows")

	var s bytes.Buffer
	want := recordedSummary{Checksum: 0xdeadbeef01, Applied: 42, Entries: 44}
	require.NoError(t, writeRecordedSummary(&s, want, []string{"note"}))
	got, err := readRecordedSummary(&s)
	require.NoError(t, err)
	require.Equal(t, want, got)
	_, err = readRecordedSummary(strings.NewReader("checksum 1\n"))
	require.Error(t, err)
}
