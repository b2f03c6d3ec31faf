package proof

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The register model of one key of one tenant: get, set, delete and
// compare-and-swap. Every set and swap writes a value no other operation
// writes, so a read names the write it saw.

type opKind uint8

const (
	opGet opKind = iota
	opSet
	opDelete
	opCAS
)

func (k opKind) String() string { return [...]string{"get", "set", "del", "cas"}[k] }

type kvInput struct {
	Kind  opKind
	Value string // set; cas: the new value unless Delete
	// Compare-and-swap: the expected value, or Absent: the key must be
	// missing; Delete: the swap deletes the key.
	Expect         string
	Absent, Delete bool
}

type kvOutput struct {
	Found   bool   // get: the key existed
	Value   string // get: its value
	Swapped bool   // cas: the swap happened
	Unknown bool   // a write whose outcome is unknown (it may or may not have happened)
}

type kvState struct {
	Exists bool
	Value  string
}

var kvModel = porcupine.Model{
	Init: func() any { return kvState{} },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(kvState), input.(kvInput), output.(kvOutput)
		switch in.Kind {
		case opGet:
			return out.Found == st.Exists && out.Value == st.Value, st
		case opSet:
			return true, kvState{Exists: true, Value: in.Value}
		case opCAS:
			match := (in.Absent && !st.Exists) || (!in.Absent && st.Exists && st.Value == in.Expect)
			if !out.Unknown && out.Swapped != match {
				return false, st
			}
			if !match {
				return true, st
			}
			if in.Delete {
				return true, kvState{}
			}
			return true, kvState{Exists: true, Value: in.Value}
		default:
			return true, kvState{}
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvInput), output.(kvOutput)
		switch {
		case in.Kind == opGet && !out.Found:
			return "get() → not found"
		case in.Kind == opGet:
			return fmt.Sprintf("get() → %q", out.Value)
		case in.Kind == opCAS:
			from, to := fmt.Sprintf("%q", in.Expect), fmt.Sprintf("%q", in.Value)
			if in.Absent {
				from = "∅"
			}
			if in.Delete {
				to = "∅"
			}
			res := fmt.Sprint(out.Swapped)
			if out.Unknown {
				res = "unknown"
			}
			return fmt.Sprintf("cas(%s → %s) → %s", from, to, res)
		case out.Unknown:
			return fmt.Sprintf("%s(%q) → unknown", in.Kind, in.Value)
		default:
			return fmt.Sprintf("%s(%q)", in.Kind, in.Value)
		}
	},
	DescribeState: func(state any) string {
		st := state.(kvState)
		if !st.Exists {
			return "∅"
		}
		return fmt.Sprintf("%q", st.Value)
	},
}

// recorder collects the history of a run, per tenant and key. It is safe
// for concurrent use.
//
// Operations whose outcome is unknown (a write that failed with
// ErrCommitUnknown, or whose connection broke after sending it) get a return
// time after every other operation of the history: they may take effect at
// any point after their call, or never. Reads that failed are left out: they
// had no effect. Writes that failed with any other error are left out too,
// as the client promises they definitely did not happen; they are kept
// aside so that a violation can be re-checked without that promise.
type recorder struct {
	start time.Time

	mu      sync.Mutex
	ops     map[string][]porcupine.Operation
	failed  map[string][]porcupine.Operation // writes reported as failed
	clients int
	n       historyCounts
}

// historyCounts summarises a recorded history.
type historyCounts struct {
	Ops, Reads, Writes, Unknown, FailedWrites, FailedReads int
	Swaps, Swapped                                         int // compare-and-swaps with a known outcome, and how many swapped
}

func newRecorder() *recorder {
	return &recorder{start: time.Now(), ops: map[string][]porcupine.Operation{}, failed: map[string][]porcupine.Operation{}}
}

// now is the recorder's clock, in nanoseconds since it was made.
func (r *recorder) now() int64 { return int64(time.Since(r.start)) }

// newClient returns a fresh client ID for the visualisation. A worker takes
// a new one after an operation of unknown outcome, which never returns.
func (r *recorder) newClient() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clients++
	return r.clients - 1
}

// add records a completed operation on key.
func (r *recorder) add(key string, client int, in kvInput, out kvOutput, call, ret int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops[key] = append(r.ops[key], porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret})
	r.n.Ops++
	switch {
	case out.Unknown:
		r.n.Unknown++
	case in.Kind == opGet:
		r.n.Reads++
	default:
		r.n.Writes++
	}
	if in.Kind == opCAS && !out.Unknown {
		r.n.Swaps++
		if out.Swapped {
			r.n.Swapped++
		}
	}
}

// addFailed records a failed operation: a read is dropped, a write kept
// aside for the lenient re-check.
func (r *recorder) addFailed(key string, client int, in kvInput, call, ret int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if in.Kind == opGet {
		r.n.FailedReads++
		return
	}
	r.n.FailedWrites++
	r.failed[key] = append(r.failed[key], porcupine.Operation{ClientId: client, Input: in, Output: kvOutput{Unknown: true}, Call: call, Return: ret})
}

func (r *recorder) counts() historyCounts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// checkTimeout bounds porcupine on one key's history; a history it cannot
// decide in time counts as unchecked, not as passed.
const checkTimeout = 60 * time.Second

// checkResult is what checking every key found.
type checkResult struct {
	Keys       int
	Illegal    []string // keys whose history is not linearizable
	Unchecked  []string // keys porcupine could not decide in time
	Evidence   []string // visualisation files of the illegal histories
	Explained  []string // per illegal key: does the lenient re-check pass?
	Operations int
}

// check checks every key's history and saves a visualisation of each
// illegal one under testdata/failures. name identifies the run in file names.
func (r *recorder) check(name string) checkResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	var res checkResult
	keys := make([]string, 0, len(r.ops))
	for k := range r.ops {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ops := withUnknownLast(r.ops[k])
		res.Keys++
		res.Operations += len(ops)
		verdict, info := porcupine.CheckOperationsVerbose(kvModel, ops, checkTimeout)
		switch verdict {
		case porcupine.Ok:
			continue
		case porcupine.Unknown:
			res.Unchecked = append(res.Unchecked, k)
			continue
		}
		res.Illegal = append(res.Illegal, k)
		path, err := saveVisualization(name, k, info)
		if err != nil {
			path = "(not saved: " + err.Error() + ")"
		}
		res.Evidence = append(res.Evidence, path)
		// Would it pass if the writes reported as failed had happened?
		lenient := withUnknownLast(append(append([]porcupine.Operation(nil), r.ops[k]...), r.failed[k]...))
		lv := porcupine.CheckOperationsTimeout(kvModel, lenient, checkTimeout)
		switch lv {
		case porcupine.Ok:
			res.Explained = append(res.Explained, "linearizable only if some write the client reported as failed was applied: a write error that is not ErrCommitUnknown was wrong")
		default:
			res.Explained = append(res.Explained, fmt.Sprintf("still %s when every failed write is treated as maybe-applied: the store itself broke linearizability", lv))
		}
	}
	return res
}

// withUnknownLast copies ops, giving every operation of unknown outcome a
// return time after all others: it may take effect at any later point.
func withUnknownLast(ops []porcupine.Operation) []porcupine.Operation {
	out := append([]porcupine.Operation(nil), ops...)
	var last int64
	for _, op := range out {
		last = max(last, op.Return, op.Call)
	}
	for i := range out {
		if out[i].Output.(kvOutput).Unknown {
			out[i].Return = last + 1
		}
	}
	return out
}

// failuresDir is where failing histories are saved. It is relative to the
// package directory (go test's working directory) and ignored by git.
const failuresDir = "testdata/failures"

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// saveVisualization writes porcupine's HTML rendering of a failing history
// and returns its absolute path.
func saveVisualization(run, key string, info porcupine.LinearizationInfo) (string, error) {
	if err := os.MkdirAll(failuresDir, 0o755); err != nil {
		return "", err
	}
	name := fmt.Sprintf("%s-%s-%s.html", time.Now().Format("20060102-150405"), unsafeName.ReplaceAllString(run, "_"),
		unsafeName.ReplaceAllString(key, "_"))
	path, err := filepath.Abs(filepath.Join(failuresDir, name))
	if err != nil {
		return "", err
	}
	if err := porcupine.VisualizePath(kvModel, info, path); err != nil {
		return "", err
	}
	return path, nil
}

// report fails t for every illegal history, naming its evidence, and logs
// the figures.
func (res checkResult) report(t testing.TB, name string, counts historyCounts) {
	t.Helper()
	t.Logf("%s: %d keys, %d operations checked (%d reads, %d writes of which %d compare-and-swaps (%d swapped), %d unknown; %d failed reads and %d failed writes left out); %d unchecked (porcupine timeout)",
		name, res.Keys, res.Operations, counts.Reads, counts.Writes, counts.Swaps, counts.Swapped, counts.Unknown, counts.FailedReads, counts.FailedWrites, len(res.Unchecked))
	for i, k := range res.Illegal {
		t.Errorf("LINEARIZABILITY VIOLATION in %s on %s: %s\n  evidence: %s", name, k, res.Explained[i], res.Evidence[i])
	}
	if len(res.Unchecked) > 0 {
		t.Logf("%s: porcupine could not decide %s within %v", name, strings.Join(res.Unchecked, ", "), checkTimeout)
	}
}

// TestCheckerCatchesViolations feeds the checker histories that break
// linearizability, so that a checker that silently stopped checking fails.
func TestCheckerCatchesViolations(t *testing.T) {
	set := func(v string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{Input: kvInput{Kind: opSet, Value: v}, Output: kvOutput{}, Call: call, Return: ret}
	}
	get := func(v string, found bool, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: 1, Input: kvInput{Kind: opGet}, Output: kvOutput{Found: found, Value: v}, Call: call, Return: ret}
	}
	del := func(call, ret int64) porcupine.Operation {
		return porcupine.Operation{Input: kvInput{Kind: opDelete}, Output: kvOutput{}, Call: call, Return: ret}
	}
	cas := func(from, to string, swapped bool, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: 2, Input: kvInput{Kind: opCAS, Expect: from, Value: to}, Output: kvOutput{Swapped: swapped}, Call: call, Return: ret}
	}
	unknownSet := func(v string, call int64) porcupine.Operation {
		return porcupine.Operation{Input: kvInput{Kind: opSet, Value: v}, Output: kvOutput{Unknown: true}, Call: call, Return: call + 1}
	}
	cases := []struct {
		name string
		ops  []porcupine.Operation
		ok   bool
	}{
		{"stale read", []porcupine.Operation{set("a", 0, 10), set("b", 20, 30), get("a", true, 40, 50)}, false},
		{"lost write", []porcupine.Operation{set("a", 0, 10), get("", false, 20, 30)}, false},
		{"read of a value never written", []porcupine.Operation{get("z", true, 0, 10)}, false},
		{"deleted key read back", []porcupine.Operation{set("a", 0, 10), del(20, 30), get("a", true, 40, 50)}, false},
		{"concurrent write seen", []porcupine.Operation{set("a", 0, 100), get("a", true, 10, 20)}, true},
		{"unknown write seen late", []porcupine.Operation{unknownSet("a", 0), get("", false, 10, 20), get("a", true, 30, 40)}, true},
		{"unknown write never applied", []porcupine.Operation{unknownSet("a", 0), get("", false, 10, 20)}, true},
		{"unknown write flickers", []porcupine.Operation{unknownSet("a", 0), get("a", true, 10, 20), get("", false, 30, 40)}, false},
		{"swap that matched reported as failed", []porcupine.Operation{set("a", 0, 10), cas("a", "b", false, 20, 30)}, false},
		{"swap that could not match reported done", []porcupine.Operation{set("a", 0, 10), cas("z", "b", true, 20, 30)}, false},
		{"swap seen", []porcupine.Operation{set("a", 0, 10), cas("a", "b", true, 20, 30), get("b", true, 40, 50)}, true},
		{"swap lost", []porcupine.Operation{set("a", 0, 10), cas("a", "b", true, 20, 30), get("a", true, 40, 50)}, false},
		{"two swaps from the same value both won", []porcupine.Operation{set("a", 0, 10), cas("a", "b", true, 20, 30), cas("a", "c", true, 20, 30)}, false},
	}
	for _, tc := range cases {
		got := porcupine.CheckOperations(kvModel, withUnknownLast(tc.ops))
		if got != tc.ok {
			t.Errorf("%s: checker says linearizable=%v, want %v", tc.name, got, tc.ok)
		}
	}
	// A failing history is saved as a visualisation.
	_, info := porcupine.CheckOperationsVerbose(kvModel, cases[0].ops, time.Second)
	dir := t.TempDir()
	if err := porcupine.VisualizePath(kvModel, info, filepath.Join(dir, "v.html")); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, "v.html")); err != nil || st.Size() == 0 {
		t.Fatalf("visualisation not written: %v", err)
	}
}
