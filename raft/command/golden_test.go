package command

// Golden log entries: the log format, pinned.
//
// A raft log outlives the build that wrote it: a replica replays entries
// written by earlier releases after a restart, and a follower of an older or
// newer build applies the leader's. So every entry type has, under
// testdata/golden, a file holding the exact bytes of sample entries and the
// schema (the Go fields, recursively, with their msgpack tags and types) of
// the struct they encode. The tests below fail when either drifts from the
// code. A committed golden file is never edited: a changed format is a new
// entry type or envelope version with a new file of its own, and the old
// type keeps decoding what earlier releases wrote. testdata/golden/README.md
// says how to add one.
//
// This file depends on nothing in the package's other test files, so that it
// moves with the command code.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/tenantkv/tenantkv/keyspace"
)

// goldenDir holds one file per entry type, named <NN>-<name>.golden.
const goldenDir = "testdata/golden"

var goldenUpdate = flag.Bool("golden-update", false,
	"write golden files for entry types that have none (never overwrites one); also TENANTKV_GOLDEN_UPDATE=1")

// goldenUpdating reports whether missing golden files are to be written.
func goldenUpdating() bool {
	return *goldenUpdate || os.Getenv("TENANTKV_GOLDEN_UPDATE") == "1"
}

// goldenSample is one pinned entry of a type. Names are unique within a type.
type goldenSample struct {
	name string
	cmd  Command
}

// goldenTime is a timestamp as msgpack decodes one (time.Unix, in the local
// zone), so that a decoded sample is deep-equal to the original.
var goldenTime = time.Unix(1767323045, 123456789)

func goldenPtr[T any](v T) *T { return &v }

func goldenMustEncode(c Command) []byte {
	b, err := Encode(c)
	if err != nil {
		panic(err)
	}
	return b
}

func goldenLimits() keyspace.Limits {
	return keyspace.Limits{
		MaxBytes: 1 << 30, MaxKeys: 1_000_000, OpsPerSec: 5_000, Burst: 10_000,
		MaxConcurrent: 64, MaxWatches: 32, MaxConnections: 128,
	}
}

func goldenInt64(v int64) []byte {
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return b
}

// goldenSamples returns the pinned samples of every command type. Together,
// the samples of a type set every field (TestGoldenSchema checks it), and
// each is a valid command, so that the golden bytes are entries a replica
// applies.
func goldenSamples() map[Type][]goldenSample {
	hash := sha256.Sum256([]byte("golden secret"))
	return map[Type][]goldenSample{
		TypeTenantWrite: {
			{"full", &TenantWrite{TenantID: 7, TenantName: "acme", Ops: []Op{
				{Kind: OpSet, Key: []byte("user/1"), Value: []byte("alice")},
				{Kind: OpDelete, Key: []byte("user/2")},
				{Kind: OpDeleteRange, Key: []byte("tmp/"), End: []byte("tmp0")},
			}, At: goldenTime.UnixNano()}},
			// At zero and nil Ops take the other branches of the fast codec.
			{"bare", &TenantWrite{TenantID: 0x0102030405060708, TenantName: "b"}},
		},
		TypeCreateTenant: {{"full", &CreateTenant{
			Name: "acme", Limits: goldenLimits(),
			Labels:    map[string]string{"team": "storage", "env": "prod"},
			CreatedAt: goldenTime,
		}}},
		TypeUpdateTenant: {{"full", &UpdateTenant{
			ID: 7, NewName: goldenPtr("acme-2"), State: goldenPtr(keyspace.StateReadOnly),
			Limits: goldenPtr(goldenLimits()), Labels: map[string]string{"env": "staging"},
		}}},
		TypeDeleteTenant: {{"full", &DeleteTenant{ID: 7}}},
		TypePutToken: {{"full", &PutToken{Token: TokenRecord{
			ID: "tok-1", Hash: hash[:], TenantID: 7, ReadOnly: true,
			ExpiresAt: goldenTime.Add(24 * time.Hour), CreatedAt: goldenTime,
		}}}},
		TypeDeleteToken:  {{"full", &DeleteToken{ID: "tok-1"}}},
		TypeSetMember:    {{"full", &SetMember{NodeID: "node-1", ClientAddr: "127.0.0.1:7000", HTTPAddr: "127.0.0.1:8000"}}},
		TypeRemoveMember: {{"full", &RemoveMember{NodeID: "node-1"}}},
		TypeNoop:         {{"full", &Noop{}}},
		TypeTxnCommit: {{"full", &TxnCommit{
			TenantID: 7, TenantName: "acme", ReadVersion: 42,
			TxnID: []byte("0123456789abcdef"),
			Reads: []KeyRange{{Start: []byte("acct/"), End: []byte("acct0")}, {Start: []byte("z")}},
			Ops: []Op{
				{Kind: OpSet, Key: []byte("acct/a"), Value: []byte("1")},
				{Kind: OpDelete, Key: []byte("acct/b")},
				{Kind: OpDeleteRange, Key: []byte("log/"), End: []byte("log0")},
				{Kind: OpAdd, Key: []byte("n/add"), Value: goldenInt64(5)},
				{Kind: OpMin, Key: []byte("n/min"), Value: goldenInt64(-3)},
				{Kind: OpMax, Key: []byte("n/max"), Value: goldenInt64(1 << 40)},
				{Kind: OpCompareAndClear, Key: []byte("lock"), Value: []byte("owner-1")},
			},
			At: goldenTime.UnixNano(),
		}}},
		TypeCompareAndSwap: {
			{"values", &CompareAndSwap{TenantID: 7, TenantName: "acme", Key: []byte("k"),
				Old: []byte("old"), New: []byte("new"), At: goldenTime.UnixNano()}},
			{"absent", &CompareAndSwap{TenantID: 7, TenantName: "acme", Key: []byte("k"),
				OldAbsent: true, NewAbsent: true, At: goldenTime.UnixNano()}},
		},
		TypeSetFormat: {{"two", &SetFormat{Version: 2}}},
		TypeHoldNonvoter: {
			{"hold", &HoldNonvoter{NodeID: "n4", Hold: true}},
			{"release", &HoldNonvoter{NodeID: "n4"}},
		},
		TypeLifecycle: {
			{"cancel", &Lifecycle{ID: 7, Name: "acme", Action: keyspace.ActionCancel, At: goldenTime.UnixNano(),
				Retention: int64(90 * 24 * time.Hour), Actor: "tok-1"}},
			{"expire", &Lifecycle{ID: 7, Name: "acme", Action: keyspace.ActionExpire, At: goldenTime.UnixNano(), Actor: ActorSystem}},
		},
		TypeAudited: {{"token", &Audited{Actor: "tok-op", At: goldenTime.UnixNano(),
			Cmd: goldenMustEncode(&DeleteToken{ID: "tok-1"})}}},
		TypeAuditNote: {{"refused", &AuditNote{ID: 7, Name: "acme", At: goldenTime.UnixNano(), Actor: "tok-1",
			Kind: "refused-cross-tenant", After: "3 attempts"}}},
		TypeAuditPrune: {{"full", &AuditPrune{ID: 7, Before: goldenTime.UnixNano(), Max: 64}}},
		TypeImportAudit: {{"full", &ImportAudit{ID: 7, Name: "acme", At: goldenTime.UnixNano(), Actor: "tok-op",
			Source: "from tenant shop (id 3)", Events: []ImportedEvent{
				{At: goldenTime.UnixNano(), Actor: "tok-1", Kind: "state", Before: "active", After: "suspended"},
			}}}},
		TypeCreateTrialTenant: {{"full", &CreateTrialTenant{
			Name: "acme", Limits: goldenLimits(),
			Labels:    map[string]string{"team": "storage"},
			CreatedAt: goldenTime, TrialEnds: goldenTime.Add(14 * 24 * time.Hour),
		}}},
	}
}

// goldenBatchSchema stands for the schema of a batch entry, which is framing,
// not a struct (batcher.go).
var goldenBatchSchema = []string{"framing uvarint(count) count*(uvarint(length) command-entry)"}

// goldenBatchCommands are the commands of the pinned batch entry: one sample
// of each type the batcher carries.
func goldenBatchCommands() []Command {
	s := goldenSamples()
	return []Command{s[TypeTenantWrite][0].cmd, s[TypeTxnCommit][0].cmd, s[TypeCompareAndSwap][0].cmd}
}

// goldenFile is a parsed golden file.
type goldenFile struct {
	typ     Type
	name    string
	schema  []string          // fields joined by single spaces
	samples map[string][]byte // sample name → entry bytes
	order   []string          // sample names in file order
}

func goldenFileName(t Type, name string) string {
	return fmt.Sprintf("%02d-%s.golden", uint8(t), name)
}

// goldenTypeName is the name of a command type in golden files: its Go type
// name, or "batch".
func goldenTypeName(t Type) string {
	if t == TypeBatch {
		return "batch"
	}
	if c := newCommand(t); c != nil {
		return reflect.TypeOf(c).Elem().Name()
	}
	return ""
}

// formatGolden renders a golden file: a comment header, the type line, the
// schema and each sample as hex, 16 bytes a line.
func formatGolden(g *goldenFile) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# tenantkv raft log entry type %d (%s): schema and golden bytes.\n", uint8(g.typ), g.name)
	b.WriteString("# Generated once by TestGoldenEncoding; never edit a committed golden file.\n")
	b.WriteString("# A changed format is a new entry type or envelope version and a new file (README.md).\n")
	b.WriteString("# Schema lines: field path, msgpack tag (quoted), Go type. Samples: the whole entry\n")
	b.WriteString("# (envelope version, type, body) in hex.\n")
	fmt.Fprintf(&b, "type %d %s\n\nschema\n", uint8(g.typ), g.name)
	for _, l := range g.schema {
		b.WriteString(l + "\n")
	}
	for _, name := range g.order {
		fmt.Fprintf(&b, "\nsample %s\n", name)
		data := g.samples[name]
		for len(data) > 0 {
			n := min(16, len(data))
			hexed := make([]string, n)
			for i := range n {
				hexed[i] = fmt.Sprintf("%02x", data[i])
			}
			b.WriteString(strings.Join(hexed, " ") + "\n")
			data = data[n:]
		}
	}
	return b.Bytes()
}

// parseGolden reads a golden file. Lines starting with # and blank lines are
// ignored.
func parseGolden(data []byte) (*goldenFile, error) {
	g := &goldenFile{samples: map[string][]byte{}}
	section, sample, sawType := "", "", false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		switch {
		case f[0] == "type" && len(f) == 3 && !sawType:
			v, err := strconv.ParseUint(f[1], 10, 8)
			if err != nil {
				return nil, fmt.Errorf("line %d: type number: %v", n, err)
			}
			g.typ, g.name, sawType = Type(v), f[2], true
		case f[0] == "schema" && len(f) == 1 && sawType && section == "":
			section = "schema"
		case f[0] == "sample" && len(f) == 2 && sawType:
			if _, dup := g.samples[f[1]]; dup {
				return nil, fmt.Errorf("line %d: sample %q twice", n, f[1])
			}
			section, sample = "sample", f[1]
			g.samples[sample] = []byte{}
			g.order = append(g.order, sample)
		case section == "schema":
			g.schema = append(g.schema, strings.Join(f, " "))
		case section == "sample":
			b, err := hex.DecodeString(strings.Join(f, ""))
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", n, err)
			}
			g.samples[sample] = append(g.samples[sample], b...)
		default:
			return nil, fmt.Errorf("line %d: unexpected %q", n, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !sawType || section == "" {
		return nil, errors.New("no type line or no schema")
	}
	return g, nil
}

// readGolden reads the golden file of type t; ok is false if there is none.
func readGolden(t *testing.T, typ Type) (_ *goldenFile, ok bool) {
	t.Helper()
	path := filepath.Join(goldenDir, goldenFileName(typ, goldenTypeName(typ)))
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	g, err := parseGolden(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return g, true
}

// writeGoldenOnce writes a new golden file and refuses to replace one.
func writeGoldenOnce(t *testing.T, g *goldenFile) {
	t.Helper()
	path := filepath.Join(goldenDir, goldenFileName(g.typ, g.name))
	if err := os.MkdirAll(goldenDir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		t.Fatalf("%s exists: a committed golden file is never overwritten", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(formatGolden(g)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s: review it and commit it", path)
}

// goldenExpected is the golden file the code produces today for typ.
func goldenExpected(t *testing.T, typ Type) *goldenFile {
	t.Helper()
	g := &goldenFile{typ: typ, name: goldenTypeName(typ), samples: map[string][]byte{}}
	add := func(name string, b []byte) {
		g.samples[name] = b
		g.order = append(g.order, name)
	}
	if typ == TypeBatch {
		g.schema = goldenBatchSchema
		var subs [][]byte
		for _, c := range goldenBatchCommands() {
			b, err := Encode(c)
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, b)
		}
		add("three", EncodeBatch(subs))
		return g
	}
	g.schema = goldenSchema(reflect.TypeOf(newCommand(typ)).Elem())
	for _, s := range goldenSamples()[typ] {
		b, err := Encode(s.cmd)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		add(s.name, b)
	}
	return g
}

// goldenTypes is every type the decoder knows (newCommand) plus the batch
// entry, which the applier splits before decoding.
func goldenTypes() []Type {
	var out []Type
	for v := range 256 {
		if t := Type(v); newCommand(t) != nil || t == TypeBatch {
			out = append(out, t)
		}
	}
	return out
}

// TestGoldenEncoding pins the bytes of every entry type: the production
// encoder (Encode, and for TenantWrite both its fast codec and the
// msgpack library it must agree with) writes each sample as its golden
// bytes, and the production decoder reads the golden bytes back as the
// sample. A missing golden file is written with -golden-update (or
// TENANTKV_GOLDEN_UPDATE=1); an existing one never is.
func TestGoldenEncoding(t *testing.T) {
	samples := goldenSamples()
	for _, typ := range goldenTypes() {
		t.Run(goldenFileName(typ, goldenTypeName(typ)), func(t *testing.T) {
			want := goldenExpected(t, typ)
			got, ok := readGolden(t, typ)
			if !ok {
				if !goldenUpdating() {
					t.Fatalf("no golden file %s; run with TENANTKV_GOLDEN_UPDATE=1 to write it",
						goldenFileName(typ, want.name))
				}
				writeGoldenOnce(t, want)
				got = want
			}
			if !slices.Equal(got.order, want.order) {
				t.Fatalf("samples %q in the golden file, %q in the test: the samples of a golden file are never changed",
					got.order, want.order)
			}
			for _, name := range want.order {
				if !bytes.Equal(got.samples[name], want.samples[name]) {
					t.Errorf("sample %s: the log format changed: encoding gives\n%x\nthe golden file holds\n%x\n%s",
						name, want.samples[name], got.samples[name], goldenRule)
				}
			}
			if typ == TypeBatch {
				checkGoldenBatch(t, got.samples["three"])
				return
			}
			for _, s := range samples[typ] {
				checkGoldenDecode(t, s, got.samples[s.name])
			}
		})
	}
}

// checkGoldenDecode checks that entry, the golden bytes of s, decodes to s.
func checkGoldenDecode(t *testing.T, s goldenSample, entry []byte) {
	t.Helper()
	if err := s.cmd.Validate(); err != nil {
		t.Errorf("sample %s is not a valid command: %v", s.name, err)
	}
	got, err := Decode(entry)
	if err != nil {
		t.Fatalf("sample %s: decode the golden bytes: %v", s.name, err)
	}
	if !reflect.DeepEqual(got, s.cmd) {
		t.Errorf("sample %s: the golden bytes decode to\n%#v\nwant\n%#v", s.name, got, s.cmd)
	}
	w, ok := s.cmd.(*TenantWrite)
	if !ok {
		return
	}
	// Encode writes a TenantWrite with the fast codec, and
	// Decode reads it with the fast decoder; the library is the
	// definition both must agree with, so it is pinned to the same bytes.
	body, err := Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	if lib := append([]byte{Version, byte(TypeTenantWrite)}, body...); !bytes.Equal(lib, entry) {
		t.Errorf("sample %s: the msgpack library encodes\n%x\nthe golden file holds\n%x", s.name, lib, entry)
	}
	fast, ok := decodeTenantWriteFast(entry[2:])
	if !ok || !reflect.DeepEqual(fast, w) {
		t.Errorf("sample %s: the fast decoder gives %#v (ok %v), want %#v", s.name, fast, ok, w)
	}
	var slow TenantWrite
	if err := Unmarshal(entry[2:], &slow); err != nil || !reflect.DeepEqual(&slow, w) {
		t.Errorf("sample %s: the msgpack library decodes %#v (%v), want %#v", s.name, &slow, err, w)
	}
}

// checkGoldenBatch checks that the golden batch entry splits into the
// entries of goldenBatchCommands, each decoding to its command.
func checkGoldenBatch(t *testing.T, entry []byte) {
	t.Helper()
	if !IsBatch(entry) {
		t.Fatalf("golden batch %x is not a batch entry", entry)
	}
	subs, err := DecodeBatch(entry)
	if err != nil {
		t.Fatalf("decode the golden batch: %v", err)
	}
	cmds := goldenBatchCommands()
	if len(subs) != len(cmds) {
		t.Fatalf("golden batch holds %d commands, want %d", len(subs), len(cmds))
	}
	for i, sub := range subs {
		got, err := Decode(sub)
		if err != nil {
			t.Fatalf("batch command %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, cmds[i]) {
			t.Errorf("batch command %d decodes to %#v, want %#v", i, got, cmds[i])
		}
	}
}

// goldenRule is what to do when a test here finds the format changed.
const goldenRule = "The log format changed. Entries already in logs were written in the old format and must " +
	"still apply: add a new entry type (or envelope version) and a new golden file for it; " +
	"do not edit the old golden file (raft/command/testdata/golden/README.md)."

// TestGoldenSchema compares the fields of every command struct, found by
// reflection, with the schema recorded in its golden file: a field added,
// removed, renamed, reordered, retagged or retyped, in the command or in a
// struct it contains, changes what an entry means or how it encodes, and
// fails here. The fix is not to edit the golden file: logs hold entries of
// the old format, which replicas must keep applying, so the change needs a
// new entry type or envelope version, with its own new golden file. The
// test also checks that the samples set every field and use every OpKind,
// so that a new field or kind cannot escape the golden bytes.
func TestGoldenSchema(t *testing.T) {
	samples := goldenSamples()
	for _, typ := range goldenTypes() {
		t.Run(goldenFileName(typ, goldenTypeName(typ)), func(t *testing.T) {
			want := goldenExpected(t, typ)
			got, ok := readGolden(t, typ)
			if !ok {
				t.Fatalf("no golden file %s (TestGoldenEncoding writes it with TENANTKV_GOLDEN_UPDATE=1)",
					goldenFileName(typ, want.name))
			}
			if !slices.Equal(got.schema, want.schema) {
				t.Errorf("type %d (%s): schema of the code differs from its golden file\n%s\n%s",
					uint8(typ), want.name, goldenDiff(got.schema, want.schema), goldenRule)
			}
			if typ == TypeBatch {
				return
			}
			set := map[string]bool{}
			for _, s := range samples[typ] {
				goldenSetPaths(reflect.ValueOf(s.cmd).Elem(), "", set)
			}
			for _, line := range want.schema {
				if path := strings.Fields(line)[0]; !set[path] {
					t.Errorf("no sample of %s sets %s: a new field must be set in a sample (goldenSamples)",
						want.name, path)
				}
			}
		})
	}
	t.Run("OpKinds", func(t *testing.T) {
		used := map[OpKind]bool{}
		for _, ss := range samples {
			for _, s := range ss {
				var ops []Op
				switch c := s.cmd.(type) {
				case *TenantWrite:
					ops = c.Ops
				case *TxnCommit:
					ops = c.Ops
				}
				for _, op := range ops {
					used[op.Kind] = true
				}
			}
		}
		for v := range 256 {
			k := OpKind(v)
			if known := k.String() != fmt.Sprintf("op(%d)", v); known && !used[k] {
				t.Errorf("no sample uses OpKind %s (%d)", k, v)
			}
		}
	})
}

// goldenDiff lists the lines only in the golden file (-) and only in the
// code (+), or says the order differs.
func goldenDiff(golden, code []string) string {
	var b strings.Builder
	for _, l := range golden {
		if !slices.Contains(code, l) {
			fmt.Fprintf(&b, "- %s   (golden file only)\n", l)
		}
	}
	for _, l := range code {
		if !slices.Contains(golden, l) {
			fmt.Fprintf(&b, "+ %s   (code only)\n", l)
		}
	}
	if b.Len() == 0 {
		b.WriteString("same fields in another order (msgpack encodes a struct in field order)\n")
	}
	return b.String()
}

var (
	goldenTimeType    = reflect.TypeFor[time.Time]()
	goldenCustomTypes = []reflect.Type{
		reflect.TypeFor[msgpack.CustomEncoder](),
		reflect.TypeFor[msgpack.Marshaler](),
	}
)

// goldenSchema lists the fields msgpack encodes for struct type st, in
// order, recursively through the structs they contain: one line per field,
// "path tag type". Types of this package are written without their package,
// so that the schema does not change when the commands move to another one.
func goldenSchema(st reflect.Type) []string {
	var out []string
	var walk func(st reflect.Type, prefix string, depth int)
	walk = func(st reflect.Type, prefix string, depth int) {
		if depth > 8 {
			panic("golden schema: structs nest too deep (recursive type?)")
		}
		for i := range st.NumField() {
			f := st.Field(i)
			if !f.IsExported() {
				continue // msgpack ignores it
			}
			path := prefix + f.Name
			if f.Anonymous {
				path += "(embedded)"
			}
			out = append(out, fmt.Sprintf("%s %s %s", path, strconv.Quote(f.Tag.Get("msgpack")), goldenTypeString(f.Type)))
			if inner, sub := goldenInnerStruct(f.Type); inner != nil {
				walk(inner, path+sub+".", depth+1)
			}
		}
	}
	walk(st, "", 0)
	return out
}

// goldenInnerStruct finds the struct a field of type t holds, through
// pointers, slices and arrays (sub is "[]" for those), if any. time.Time and
// types with their own msgpack encoding are leaves.
func goldenInnerStruct(t reflect.Type) (_ reflect.Type, sub string) {
	for {
		switch t.Kind() {
		case reflect.Pointer:
			t = t.Elem()
			continue
		case reflect.Slice, reflect.Array:
			t, sub = t.Elem(), sub+"[]"
			continue
		case reflect.Struct:
			if t == goldenTimeType || goldenCustom(t) {
				return nil, ""
			}
			return t, sub
		}
		return nil, ""
	}
}

func goldenCustom(t reflect.Type) bool {
	for _, c := range goldenCustomTypes {
		if t.Implements(c) || reflect.PointerTo(t).Implements(c) {
			return true
		}
	}
	return false
}

// goldenTypeString describes t for a schema: a named type of another package
// by its qualified name, one of this package by its name; a named non-struct
// type with its kind, which is what msgpack encodes.
func goldenTypeString(t reflect.Type) string {
	own := reflect.TypeFor[Op]().PkgPath()
	if t.Name() != "" {
		name := t.Name()
		if t.PkgPath() != "" && t.PkgPath() != own {
			name = t.String()
		}
		if goldenCustom(t) {
			name += "{custom-msgpack}"
		}
		if t.Kind() != reflect.Struct && t.PkgPath() != "" {
			name += "(" + t.Kind().String() + ")"
		}
		return name
	}
	switch t.Kind() {
	case reflect.Pointer:
		return "*" + goldenTypeString(t.Elem())
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 && t.Elem().Name() == "uint8" {
			return "[]byte"
		}
		return "[]" + goldenTypeString(t.Elem())
	case reflect.Array:
		return fmt.Sprintf("[%d]%s", t.Len(), goldenTypeString(t.Elem()))
	case reflect.Map:
		return "map[" + goldenTypeString(t.Key()) + "]" + goldenTypeString(t.Elem())
	}
	return t.String()
}

// goldenSetPaths marks in set the path of every field of struct v that is
// not zero, with goldenSchema's paths; a field inside a slice counts as set
// if one element sets it.
func goldenSetPaths(v reflect.Value, prefix string, set map[string]bool) {
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		path := prefix + f.Name
		if f.Anonymous {
			path += "(embedded)"
		}
		fv := v.Field(i)
		if !fv.IsZero() {
			set[path] = true
		}
		if inner, _ := goldenInnerStruct(f.Type); inner != nil {
			goldenSetInner(fv, path, set)
		}
	}
}

func goldenSetInner(v reflect.Value, path string, set map[string]bool) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			goldenSetInner(v.Elem(), path, set)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			goldenSetInner(v.Index(i), path+"[]", set)
		}
	case reflect.Struct:
		goldenSetPaths(v, path+".", set)
	}
}

// goldenEnumTypes reads the package source for the constants of type
// Type, so that a type added to the enum but not to newCommand, or
// given no golden file, is caught.
func goldenEnumTypes(t *testing.T) map[string]Type {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Type{}
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Type" {
					continue
				}
				for i, name := range vs.Names {
					var lit ast.Expr
					if i < len(vs.Values) {
						lit = vs.Values[i]
					}
					bl, ok := lit.(*ast.BasicLit)
					if !ok || bl.Kind != token.INT {
						t.Fatalf("%s: Type %s is not an integer literal; give each type its number explicitly",
							fset.Position(name.Pos()), name.Name)
					}
					v, err := strconv.ParseUint(bl.Value, 0, 8)
					if err != nil {
						t.Fatalf("%s: %v", fset.Position(bl.Pos()), err)
					}
					out[name.Name] = Type(v)
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("found no Type constants in the package source")
	}
	return out
}

// TestGoldenCoversEveryType checks that every entry type, in the enum or
// known to the decoder, has samples and a golden file, that every golden
// file names a known type, and that the decoder refuses the types and
// envelope versions it does not know with ErrUnknownCommand.
func TestGoldenCoversEveryType(t *testing.T) {
	known := map[Type]bool{}
	for _, typ := range goldenTypes() {
		known[typ] = true
	}
	for name, typ := range goldenEnumTypes(t) {
		if !known[typ] {
			t.Errorf("%s (%d) is in the Type enum but newCommand does not know it", name, typ)
		}
	}
	samples := goldenSamples()
	for typ := range known {
		if _, ok := samples[typ]; !ok && typ != TypeBatch {
			t.Errorf("type %d (%s) has no samples in goldenSamples", typ, goldenTypeName(typ))
		}
		if got := reflect.TypeOf(newCommand(typ)); typ != TypeBatch {
			for _, s := range samples[typ] {
				if reflect.TypeOf(s.cmd) != got {
					t.Errorf("sample %s of type %d is a %T", s.name, typ, s.cmd)
				}
			}
		}
		path := filepath.Join(goldenDir, goldenFileName(typ, goldenTypeName(typ)))
		if _, err := os.Stat(path); err != nil {
			t.Errorf("type %d (%s) has no golden file: %v", typ, goldenTypeName(typ), err)
		}
	}
	for typ := range samples {
		if !known[typ] {
			t.Errorf("goldenSamples has samples of type %d, which the decoder does not know", typ)
		}
	}

	paths, err := filepath.Glob(filepath.Join(goldenDir, "*.golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		g, err := parseGolden(data)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if !known[g.typ] {
			t.Errorf("%s is for type %d, which the decoder does not know", path, g.typ)
			continue
		}
		// The name is compared without case, so that exporting an
		// identifier (Noop) when the commands move is not a format change.
		if !strings.EqualFold(g.name, goldenTypeName(g.typ)) {
			t.Errorf("%s names type %d %s; the decoder makes it a %s", path, g.typ, g.name, goldenTypeName(g.typ))
		}
		if want := goldenFileName(g.typ, g.name); filepath.Base(path) != want {
			t.Errorf("%s should be named %s", path, want)
		}
	}

	for v := range 256 {
		typ := Type(v)
		if newCommand(typ) != nil {
			continue
		}
		// The batch entry too: it is split by the applier, never decoded.
		if _, err := Decode([]byte{Version, byte(typ), 0x80}); !errors.Is(err, ErrUnknownCommand) {
			t.Errorf("entry of unknown type %d: got %v, want ErrUnknownCommand", v, err)
		}
	}
	for _, ss := range samples {
		for _, s := range ss {
			entry, err := Encode(s.cmd)
			if err != nil {
				t.Fatal(err)
			}
			for v := range 256 {
				if v == Version {
					continue
				}
				entry[0] = byte(v)
				if _, err := Decode(entry); !errors.Is(err, ErrUnknownCommand) {
					t.Errorf("%T under envelope version %d: got %v, want ErrUnknownCommand", s.cmd, v, err)
				}
			}
		}
	}
	batch := EncodeBatch([][]byte{{Version, byte(TypeNoop)}})
	for v := range 256 {
		batch[0] = byte(v)
		if IsBatch(batch) != (v == Version) {
			t.Errorf("IsBatch under envelope version %d: %v", v, IsBatch(batch))
		}
	}
}
