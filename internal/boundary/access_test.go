package boundary

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The server reads the store and never writes it: writes reach the store
// only as entries raft applies, through the state machine (raft/fsm). The
// import rules cannot say this, since the server must import store for
// its read-only view; so the server's code is type-checked and every
// expression in it is judged by its type.

const (
	storePkg = module + "/store"
	fsmPkg   = module + "/raft/fsm"
)

// storeWrites are the names of the store methods that change the database
// or open a way to (a batch, the system view). A store type with any of
// them, or with a method that returns such a type, can write. Close is not
// among them: iterators and snapshots must be closed, and the *Store that
// Close would shut is refused by its type.
var storeWrites = map[string]bool{
	"Set": true, "SetVersioned": true, "Delete": true, "DeleteRange": true, "Clear": true,
	"Commit": true, "NewBatch": true, "Restore": true, "Flush": true, "Sync": true,
	"PurgeTenant": true, "System": true, "TenantUnindexed": true,
}

// fsmWrites are the state machine's entry points that write the store or
// change what it accepts. Only the raft adapter calls them, as raft
// applies, snapshots, restores and stops; from anywhere else they would
// bypass the log.
var fsmWrites = map[string]bool{
	"ApplyBatch": true, "Restore": true, "Snapshot": true, "FailCommits": true, "Stop": true,
}

// readersOnly are the packages that must not reach a store write.
var readersOnly = []string{module + "/server", module + "/cmd/tenantkv"}

// writable reports whether values of type t can write the store: t is, or
// holds (through pointers, slices, maps, channels, functions or unnamed
// structs), a store type that has a write method or a method returning a
// writable type. Named types of other packages are not looked into: what
// they can do is their own package's business and their own test's.
type writable struct{ memo map[*types.Named]bool }

func (w *writable) of(t types.Type) bool {
	switch t := t.(type) {
	case *types.Named:
		return w.named(t)
	case *types.Alias:
		return w.of(types.Unalias(t))
	case *types.Pointer:
		return w.of(t.Elem())
	case *types.Slice:
		return w.of(t.Elem())
	case *types.Array:
		return w.of(t.Elem())
	case *types.Map:
		return w.of(t.Key()) || w.of(t.Elem())
	case *types.Chan:
		return w.of(t.Elem())
	case *types.Signature:
		return w.of(t.Params()) || w.of(t.Results())
	case *types.Tuple:
		for v := range t.Variables() {
			if w.of(v.Type()) {
				return true
			}
		}
	case *types.Struct:
		for f := range t.Fields() {
			if w.of(f.Type()) {
				return true
			}
		}
	}
	return false
}

func (w *writable) named(t *types.Named) bool {
	if t.Obj().Pkg() == nil || t.Obj().Pkg().Path() != storePkg {
		return false
	}
	t = t.Origin()
	if v, ok := w.memo[t]; ok {
		return v
	}
	w.memo[t] = false // a type that returns itself is judged by its other methods
	ms := types.NewMethodSet(types.NewPointer(t))
	for sel := range ms.Methods() {
		m := sel.Obj().(*types.Func)
		if storeWrites[m.Name()] || w.of(m.Signature().Results()) {
			w.memo[t] = true
			return true
		}
	}
	return false
}

// checkAccess type-checks files as package path and returns one line per
// reach for a store write: an expression (or a declared type) of a
// writable store type, or a call or method value of a store write method
// or of a state machine write entry point.
func checkAccess(fset *token.FileSet, imp types.Importer, path string, files []*ast.File) ([]string, error) {
	info := &types.Info{
		Types:      map[ast.Expr]types.TypeAndValue{},
		Defs:       map[*ast.Ident]types.Object{},
		Selections: map[*ast.SelectorExpr]*types.Selection{},
	}
	conf := types.Config{Importer: imp}
	if _, err := conf.Check(path, fset, files, info); err != nil {
		return nil, fmt.Errorf("type-check %s: %w", path, err)
	}
	w := &writable{memo: map[*types.Named]bool{}}
	var bad []string
	report := func(pos token.Pos, format string, args ...any) {
		p := fset.Position(pos)
		bad = append(bad, fmt.Sprintf("%s:%d: %s", filepath.Base(p.Filename), p.Line, fmt.Sprintf(format, args...)))
	}
	short := func(t types.Type) string { return types.TypeString(t, (*types.Package).Name) }
	for e, tv := range info.Types {
		if tv.Type != nil && w.of(tv.Type) {
			report(e.Pos(), "%s is of type %s, which can write the store; read through store.ReadOnly",
				types.ExprString(e), short(tv.Type))
		}
	}
	for id, obj := range info.Defs {
		if v, ok := obj.(*types.Var); ok && w.of(v.Type()) {
			report(id.Pos(), "%s is of type %s, which can write the store; read through store.ReadOnly", id.Name, short(v.Type()))
		}
	}
	for e, sel := range info.Selections {
		m, ok := sel.Obj().(*types.Func)
		if !ok || m.Pkg() == nil {
			continue
		}
		recv := m.Signature().Recv()
		if recv == nil {
			continue
		}
		switch {
		case m.Pkg().Path() == storePkg && storeWrites[m.Name()]:
			report(e.Pos(), "%s reaches the store write method %s.%s", types.ExprString(e), short(recv.Type()), m.Name())
		case m.Pkg().Path() == fsmPkg && fsmWrites[m.Name()]:
			report(e.Pos(), "%s reaches the state machine's %s, which only raft may drive", types.ExprString(e), m.Name())
		}
	}
	slices.Sort(bad)
	return slices.Compact(bad), nil
}

// listed is the part of `go list -export -json` the access rule needs.
type listed struct {
	ImportPath string
	Dir        string
	Export     string
	GoFiles    []string
	Error      *struct{ Err string }
}

// exportData lists pkgs and their dependencies with their compiled export
// data, and returns an importer reading it and the listed packages.
func exportData(t *testing.T, fset *token.FileSet, pkgs ...string) (types.Importer, map[string]listed) {
	t.Helper()
	args := append([]string{"list", "-export", "-deps", "-json=ImportPath,Dir,Export,GoFiles,Error"}, pkgs...)
	cmd := exec.CommandContext(t.Context(), "go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -export: %v\n%s", err, stderr.String())
	}
	byPath := map[string]listed{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		if p.Error != nil {
			t.Fatalf("%s: %s", p.ImportPath, p.Error.Err)
		}
		byPath[p.ImportPath] = p
	}
	lookup := func(path string) (io.ReadCloser, error) {
		p, ok := byPath[path]
		if !ok || p.Export == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(p.Export)
	}
	return importer.ForCompiler(fset, "gc", lookup), byPath
}

func TestServerCannotWriteStore(t *testing.T) {
	fset := token.NewFileSet()
	// store and raft/fsm are listed too, so that the synthetic packages
	// of TestAccessRuleCatchesWrites can use the same importer.
	imp, byPath := exportData(t, fset, slices.Concat(readersOnly, []string{storePkg, fsmPkg})...)
	for _, path := range readersOnly {
		p := byPath[path]
		var files []*ast.File
		for _, name := range p.GoFiles { // non-test files of the default build
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		if len(files) == 0 {
			t.Fatalf("%s: no files to check", path)
		}
		bad, err := checkAccess(fset, imp, path, files)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range bad {
			t.Errorf("%s: %s", path, line)
		}
	}
	t.Run("rule bites", func(t *testing.T) { accessRuleCatchesWrites(t, fset, imp) })
}

// accessRuleCatchesWrites type-checks small packages against the real
// store and state machine: one that reads as the server does must pass,
// and each that reaches a write once must be caught.
func accessRuleCatchesWrites(t *testing.T, fset *token.FileSet, imp types.Importer) {
	check := func(body string) []string {
		t.Helper()
		src := "package p\n\nimport (\n\t\"io\"\n\t\"github.com/tenantkv/tenantkv/store\"\n\t\"github.com/tenantkv/tenantkv/raft/fsm\"\n)\n\n" +
			"var _ io.Writer\nvar _ *fsm.Machine\nvar _ *store.ReadOnly\n\n" + body
		f, err := parser.ParseFile(fset, "p.go", src, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parse %q: %v", body, err)
		}
		bad, err := checkAccess(fset, imp, "example.com/p", []*ast.File{f})
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		return bad
	}
	reads := `
func read(r *store.ReadOnly, m *fsm.Machine, w io.Writer) error {
	v, err := r.Tenant(1)
	if err != nil {
		return err
	}
	if _, _, err := v.GetVersioned([]byte("k")); err != nil {
		return err
	}
	sn := r.NewSnapshot()
	defer sn.Close()
	sv, _ := sn.Tenant(1)
	it, _ := sv.NewIterator(nil, nil, false)
	for it.Next() {
		_, _ = it.Key(), it.Version()
	}
	it.Close()
	_, _ = sv.ExportTenant(w)
	_, _ = r.EstimateTenantDiskUsage(1)
	_, _ = m.LookupTenant("t")
	var o store.Options
	return o.Validate()
}`
	if bad := check(reads); len(bad) != 0 {
		t.Fatalf("a package that only reads was refused:\n%s", strings.Join(bad, "\n"))
	}
	for _, v := range []struct{ rule, body string }{
		{"a *store.Store parameter", `func f(s *store.Store) {}`},
		{"a struct field of *store.Store", `type server struct{ st *store.Store }`},
		{"opening the store", `func f() { st, _ := store.Open("d", nil); _ = st }`},
		{"a store.Open func value", `var open = store.Open`},
		{"a *store.Batch in a slice", `var pending []*store.Batch`},
		{"a TenantView from a map", `func f(m map[string]*store.TenantView) { _ = m["a"] }`},
		{"a *store.Snapshot (its Tenant returns a TenantView)", `func f(sn *store.Snapshot) {}`},
		{"a *store.SystemView", `func f(s *store.SystemView) {}`},
		{"a callback handed a *store.Store", `var hook func(func(*store.Store))`},
		{"a write method expression", `var set = (*store.TenantView).Set`},
		{"the state machine's ApplyBatch", `func f(m *fsm.Machine) { m.ApplyBatch(nil) }`},
		{"the state machine's Restore", `func f(m *fsm.Machine, r io.Reader) error { return m.Restore(r) }`},
		{"the state machine's Snapshot", `func f(m *fsm.Machine) { s, _ := m.Snapshot(); s.Close() }`},
	} {
		if bad := check(v.body); len(bad) == 0 {
			t.Errorf("rule not enforced: %s", v.rule)
		}
	}
}
