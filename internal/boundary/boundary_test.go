// Package boundary holds the tests that enforce the package rules of
// DESIGN.md and docs/ARCHITECTURE.md: one owner per outside dependency,
// imports that point downward only (this file), and a server that can
// only read the store (access_test.go). It has no code of its own.
package boundary

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/tenantkv/tenantkv"

// pkg is the part of `go list -json` output the rules look at.
type pkg struct {
	ImportPath   string
	Imports      []string // non-test imports
	TestImports  []string // imports of the package's _test.go files
	XTestImports []string // imports of its external (_test package) tests
	Deps         []string // every package the non-test build links
	Error        *struct{ Err string }
}

// rel returns the path of p inside the module ("store", "internal/wire",
// "" for the root), and whether p is in the module at all.
func rel(p string) (string, bool) {
	if p == module {
		return "", true
	}
	if r, ok := strings.CutPrefix(p, module+"/"); ok {
		return r, true
	}
	return "", false
}

// under reports whether path p (module-relative or not) is dir or inside it.
func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// inModuleDir reports whether import path p is the module directory dir or
// inside it.
func inModuleDir(p, dir string) bool {
	r, ok := rel(p)
	return ok && under(r, dir)
}

const (
	pebblePath  = "github.com/cockroachdb/pebble"
	hraftPath   = "github.com/hashicorp/raft" // a prefix: also matches raft-boltdb
	msgpackPath = "github.com/vmihailenco/msgpack"
	bboltPath   = "go.etcd.io/bbolt"
	boltPath    = "github.com/boltdb/bolt"

	internalDir = "internal"
	wireDir     = "internal/wire"
	storeDir    = "store"
	raftlogDir  = "store/raftlog"
	raftDir     = "raft"
	commandDir  = "raft/command"
	fsmDir      = "raft/fsm"
	msgpDir     = "internal/msgp"
	serverDir   = "server"
	keyspaceDir = "keyspace"
	clientDir   = "client"
	benchDir    = "bench"
	cmdDir      = "cmd"
)

func isPebble(p string) bool  { return p == pebblePath || strings.HasPrefix(p, pebblePath+"/") }
func isHraft(p string) bool   { return strings.HasPrefix(p, hraftPath) }
func isMsgpack(p string) bool { return p == msgpackPath || strings.HasPrefix(p, msgpackPath+"/") }
func isStorageLib(p string) bool {
	return isPebble(p) || isHraft(p) || under(p, bboltPath) || under(p, boltPath)
}

// check returns one line per broken rule.
func check(pkgs []pkg) []string {
	var bad []string
	report := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	for _, p := range pkgs {
		self, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		name := p.ImportPath
		allImports := slices.Concat(p.Imports, p.TestImports, p.XTestImports)
		for _, imp := range p.Imports {
			ir, inModule := rel(imp)

			// Only store imports Pebble.
			if isPebble(imp) && !under(self, storeDir) {
				report("%s imports %s: only store may import Pebble", name, imp)
			}
			// Only raft imports hashicorp/raft and raft-boltdb.
			if isHraft(imp) && !under(self, raftDir) {
				report("%s imports %s: only raft may import hashicorp/raft", name, imp)
			}
			// Only keyspace, raft and internal/wire frame msgpack.
			if isMsgpack(imp) && !under(self, keyspaceDir) && !under(self, raftDir) && !under(self, wireDir) {
				report("%s imports %s: only keyspace, raft and internal/wire may import msgpack", name, imp)
			}
			if !inModule {
				continue
			}
			switch {
			case under(self, keyspaceDir):
				if !under(ir, keyspaceDir) {
					report("%s imports %s: keyspace imports nothing from the module", name, imp)
				}
			case under(self, raftlogDir):
				// The raft log is a Pebble of its own holding opaque
				// entries: it needs nothing of tenants or keys.
				report("%s imports %s: store/raftlog imports nothing from the module", name, imp)
			case under(self, storeDir):
				if !under(ir, keyspaceDir) && !under(ir, storeDir) {
					report("%s imports %s: store may import only keyspace from the module", name, imp)
				}
			case under(self, commandDir):
				// The log format stands alone: the state machine, the
				// adapter and the tools that read a log all build on it.
				if !under(ir, keyspaceDir) && !under(ir, msgpDir) && !under(ir, commandDir) {
					report("%s imports %s: raft/command may import only keyspace and internal/msgp from the module", name, imp)
				}
			case under(self, fsmDir):
				if !under(ir, storeDir) && !under(ir, keyspaceDir) && !under(ir, commandDir) && !under(ir, internalDir) && !under(ir, fsmDir) {
					report("%s imports %s: raft/fsm may import only store, keyspace, raft/command and internal/... from the module", name, imp)
				}
			case under(self, raftDir):
				if !under(ir, storeDir) && !under(ir, keyspaceDir) && !under(ir, raftDir) && !under(ir, internalDir) {
					report("%s imports %s: raft may import only store, keyspace and internal/... from the module", name, imp)
				}
			case under(self, clientDir):
				if !under(ir, wireDir) && !under(ir, clientDir) {
					report("%s imports %s: client may import only internal/wire from the module", name, imp)
				}
			case under(self, benchDir):
				if !under(ir, clientDir) && !under(ir, internalDir) && !under(ir, benchDir) {
					report("%s imports %s: bench may import only client and internal/... from the module", name, imp)
				}
			}
		}
		// The state machine is driven only by the raft adapter, and read
		// by the server through the node; nothing else builds on it
		// (tests may, to look at results).
		for _, imp := range p.Imports {
			if inModuleDir(imp, fsmDir) && !under(self, raftDir) && !under(self, serverDir) {
				report("%s imports %s: only raft and server may import raft/fsm", name, imp)
			}
		}
		// The state machine and the log format know nothing of
		// hashicorp/raft, tests included: they are fed entries directly.
		if under(self, commandDir) || under(self, fsmDir) {
			for _, imp := range allImports {
				if isHraft(imp) {
					report("%s imports %s: raft/command and raft/fsm must not import hashicorp/raft", name, imp)
				}
			}
		}
		// Pebble stays in store, tests included.
		for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
			if isPebble(imp) && !under(self, storeDir) {
				report("%s (tests) import %s: only store may import Pebble", name, imp)
			}
		}
		// Nothing imports cmd/..., tests included.
		for _, imp := range allImports {
			if inModuleDir(imp, cmdDir) && !under(self, cmdDir) {
				report("%s imports %s: nothing may import cmd", name, imp)
			}
		}
		// Applications link no storage: client's whole dependency graph
		// stays clear of store, raft, server and the storage libraries.
		if under(self, clientDir) {
			for _, dep := range p.Deps {
				if isStorageLib(dep) || inModuleDir(dep, storeDir) || inModuleDir(dep, raftDir) ||
					inModuleDir(dep, serverDir) || inModuleDir(dep, keyspaceDir) {
					report("%s depends on %s: client must not link storage, raft, server or keyspace", name, dep)
				}
			}
		}
	}
	slices.Sort(bad)
	return slices.Compact(bad)
}

// goList lists every package of the module.
func goList(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "go", "list", "-e", "-json", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func TestImportBoundaries(t *testing.T) {
	pkgs := goList(t)
	seen := map[string]bool{}
	for _, p := range pkgs {
		r, _ := rel(p.ImportPath)
		seen[r] = true
		if p.Error != nil {
			// A package that does not build is for its own tests to
			// report; its imports are still checked as far as known.
			t.Logf("%s: %s", p.ImportPath, p.Error.Err)
		}
	}
	// The rules are vacuous unless the packages they guard are listed.
	for _, must := range []string{keyspaceDir, storeDir, commandDir, fsmDir, serverDir} {
		if !seen[must] {
			t.Fatalf("go list did not report %s/%s; listed %v", module, must, seen)
		}
	}
	for _, line := range check(pkgs) {
		t.Error(line)
	}
}

// TestCheckCatchesViolations feeds check a module that breaks every rule
// once, so that a rule that silently stops matching fails here.
func TestCheckCatchesViolations(t *testing.T) {
	m := func(dir string) string { return module + "/" + dir }
	ok := []pkg{
		{ImportPath: m("keyspace"), Imports: []string{"bytes", msgpackPath + "/v5"}},
		{ImportPath: m("store"), Imports: []string{pebblePath + "/v2", pebblePath + "/v2/vfs", m("keyspace")},
			TestImports: []string{pebblePath + "/v2/vfs/errorfs"}},
		{ImportPath: m("store/raftlog"), Imports: []string{pebblePath + "/v2", pebblePath + "/v2/vfs"}},
		{ImportPath: m("raft"), Imports: []string{hraftPath, hraftPath + "-boltdb/v2", msgpackPath + "/v5",
			m("store"), m("store/raftlog"), m("keyspace"), m("internal/wire"), m("raft/command"), m("raft/fsm")}},
		{ImportPath: m("raft/command"), Imports: []string{msgpackPath + "/v5", m("keyspace"), m("internal/msgp")},
			XTestImports: []string{m("raft/command")}},
		{ImportPath: m("raft/fsm"), Imports: []string{m("store"), m("keyspace"), m("raft/command"), m("internal/msgp")},
			TestImports: []string{m("store")}},
		{ImportPath: m("internal/proof"), TestImports: []string{m("raft/fsm"), m("server")}},
		{ImportPath: m("internal/wire"), Imports: []string{msgpackPath + "/v5"}},
		{ImportPath: m("client"), Imports: []string{"net", m("internal/wire")}, Deps: []string{"net", m("internal/wire"), msgpackPath + "/v5"}},
		{ImportPath: m("server"), Imports: []string{m("raft"), m("raft/fsm"), m("raft/command"), m("store"), m("keyspace"), m("internal/wire")}},
		{ImportPath: m("bench"), Imports: []string{m("client"), m("internal/wire")}},
		{ImportPath: m("cmd/tenantkv"), Imports: []string{m("server"), m("client"), m("bench")},
			XTestImports: []string{m("cmd/tenantkv")}},
	}
	if bad := check(ok); len(bad) != 0 {
		t.Fatalf("a module that keeps the rules was refused:\n%s", strings.Join(bad, "\n"))
	}
	violations := []struct {
		rule string
		p    pkg
	}{
		{"server imports pebble", pkg{ImportPath: m("server"), Imports: []string{pebblePath + "/v2"}}},
		{"raft imports a pebble subpackage", pkg{ImportPath: m("raft"), Imports: []string{pebblePath + "/v2/vfs"}}},
		{"raft tests import pebble", pkg{ImportPath: m("raft"), TestImports: []string{pebblePath + "/v2/vfs"}}},
		{"server x-tests import pebble", pkg{ImportPath: m("server"), XTestImports: []string{pebblePath + "/v2"}}},
		{"server imports hashicorp/raft", pkg{ImportPath: m("server"), Imports: []string{hraftPath}}},
		{"store imports raft-boltdb", pkg{ImportPath: m("store"), Imports: []string{hraftPath + "-boltdb/v2"}}},
		{"client imports store", pkg{ImportPath: m("client"), Imports: []string{m("store")}}},
		{"client imports raft", pkg{ImportPath: m("client"), Imports: []string{m("raft")}}},
		{"client imports server", pkg{ImportPath: m("client"), Imports: []string{m("server")}}},
		{"client imports keyspace", pkg{ImportPath: m("client"), Imports: []string{m("keyspace")}}},
		{"client imports pebble", pkg{ImportPath: m("client"), Imports: []string{pebblePath + "/v2"}}},
		{"client links pebble through a dependency", pkg{ImportPath: m("client"), Deps: []string{pebblePath + "/v2"}}},
		{"client links bbolt", pkg{ImportPath: m("client"), Deps: []string{bboltPath}}},
		{"client links store", pkg{ImportPath: m("client"), Deps: []string{m("store")}}},
		{"server imports cmd", pkg{ImportPath: m("server"), Imports: []string{m("cmd/tenantkv")}}},
		{"bench tests import cmd", pkg{ImportPath: m("bench"), TestImports: []string{m("cmd/tenantkv")}}},
		{"store imports raft", pkg{ImportPath: m("store"), Imports: []string{m("raft")}}},
		{"store/raftlog imports keyspace", pkg{ImportPath: m("store/raftlog"), Imports: []string{m("keyspace")}}},
		{"store/raftlog imports store", pkg{ImportPath: m("store/raftlog"), Imports: []string{m("store")}}},
		{"store/raftlog imports hashicorp/raft", pkg{ImportPath: m("store/raftlog"), Imports: []string{hraftPath}}},
		{"store imports internal/wire", pkg{ImportPath: m("store"), Imports: []string{m("internal/wire")}}},
		{"keyspace imports store", pkg{ImportPath: m("keyspace"), Imports: []string{m("store")}}},
		{"keyspace imports internal/wire", pkg{ImportPath: m("keyspace"), Imports: []string{m("internal/wire")}}},
		{"raft imports server", pkg{ImportPath: m("raft"), Imports: []string{m("server")}}},
		{"raft imports client", pkg{ImportPath: m("raft"), Imports: []string{m("client")}}},
		{"bench imports store", pkg{ImportPath: m("bench"), Imports: []string{m("store")}}},
		{"bench imports server", pkg{ImportPath: m("bench"), Imports: []string{m("server")}}},
		{"store imports msgpack", pkg{ImportPath: m("store"), Imports: []string{msgpackPath + "/v5"}}},
		{"server imports msgpack", pkg{ImportPath: m("server"), Imports: []string{msgpackPath + "/v5/msgpcode"}}},
		{"client imports msgpack", pkg{ImportPath: m("client"), Imports: []string{msgpackPath + "/v5"}}},
		{"raft/fsm imports hashicorp/raft", pkg{ImportPath: m("raft/fsm"), Imports: []string{hraftPath}}},
		{"raft/fsm tests import raft-boltdb", pkg{ImportPath: m("raft/fsm"), TestImports: []string{hraftPath + "-boltdb/v2"}}},
		{"raft/command imports hashicorp/raft", pkg{ImportPath: m("raft/command"), Imports: []string{hraftPath}}},
		{"raft/command x-tests import hashicorp/raft", pkg{ImportPath: m("raft/command"), XTestImports: []string{hraftPath}}},
		{"raft/command imports store", pkg{ImportPath: m("raft/command"), Imports: []string{m("store")}}},
		{"raft/command imports raft/fsm", pkg{ImportPath: m("raft/command"), Imports: []string{m("raft/fsm")}}},
		{"raft/command imports internal/wire", pkg{ImportPath: m("raft/command"), Imports: []string{m("internal/wire")}}},
		{"raft/fsm imports the raft adapter", pkg{ImportPath: m("raft/fsm"), Imports: []string{m("raft")}}},
		{"raft/fsm imports server", pkg{ImportPath: m("raft/fsm"), Imports: []string{m("server")}}},
		{"raft/fsm imports pebble", pkg{ImportPath: m("raft/fsm"), Imports: []string{pebblePath + "/v2"}}},
		{"cmd imports raft/fsm", pkg{ImportPath: m("cmd/tenantkv"), Imports: []string{m("raft/fsm")}}},
		{"bench imports raft/fsm", pkg{ImportPath: m("bench"), Imports: []string{m("raft/fsm")}}},
		{"internal/proof imports raft/fsm", pkg{ImportPath: m("internal/proof"), Imports: []string{m("raft/fsm")}}},
	}
	for _, v := range violations {
		if bad := check([]pkg{v.p}); len(bad) == 0 {
			t.Errorf("rule not enforced: %s", v.rule)
		}
	}
	// Packages outside the module are not judged.
	if bad := check([]pkg{{ImportPath: "example.com/other", Imports: []string{pebblePath + "/v2", hraftPath}}}); len(bad) != 0 {
		t.Errorf("judged a package outside the module: %v", bad)
	}
}
