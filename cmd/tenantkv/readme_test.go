package main

// The README test runs the quickstart of README.md against live nodes, so
// that the README cannot drift from the binary.
//
// It reads every ```sh block after the quickstart marker. In a block:
//
//	make run                     starts the first node, as `make run` does
//	./bin/tenantkv serve …       starts a node in the background, waits until it is ready
//	./bin/tenantkv …             runs, must exit 0
//	NAME=$(./bin/tenantkv …)     runs, must exit 0; NAME is set for later commands
//	… # → text                   text is the expected output (stdout)
//	# → text                     one more line of expected output
//	# → text (exit N)            expected exit status N with text on stderr
//
// Lines ending in '\' continue on the next line; other # lines are comments.
// Commands run with sh in a temporary directory (so ./data is the first
// node's, and its operator token is found as in the README), with
// ./bin/tenantkv replaced by the built binary and every 127.0.0.1 address
// replaced by a free port. Output is compared line by line with runs of
// white space collapsed.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const quickstartMarker = "<!-- quickstart"

// readmeStep is one command of the quickstart.
type readmeStep struct {
	line   int    // line number in README.md
	cmd    string // the shell command, continuations joined
	assign string // NAME of NAME=$(…), or ""
	expect []string
	exit   int // expected exit status; non-zero: expect is stderr
}

var (
	assignRE = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)=\$\((.*)\)$`)
	exitRE   = regexp.MustCompile(`^(.*?)\s*\(exit (\d+)\)$`)
	addrRE   = regexp.MustCompile(`127\.0\.0\.1:\d+`)
)

// parseQuickstart returns the steps of the sh blocks after the marker.
func parseQuickstart(readme string) ([]readmeStep, error) {
	_, after, ok := strings.Cut(readme, quickstartMarker)
	if !ok {
		return nil, fmt.Errorf("no %q marker", quickstartMarker)
	}
	first := strings.Count(readme[:len(readme)-len(after)], "\n") + 1
	var steps []readmeStep
	inBlock := false
	pending, pendingLine := "", 0
	for i, raw := range strings.Split(after, "\n") {
		n := first + i
		line := strings.TrimSpace(raw)
		switch {
		case !inBlock:
			inBlock = line == "```sh"
			continue
		case line == "```":
			if pending != "" {
				return nil, fmt.Errorf("line %d: block ends after a continuation", n)
			}
			inBlock = false
			continue
		}
		if pending != "" {
			line = pending + " " + line
		} else {
			pendingLine = n
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			pending = strings.TrimSpace(rest)
			continue
		}
		pending = ""
		switch {
		case line == "":
		case strings.HasPrefix(line, "# →"):
			if len(steps) == 0 {
				return nil, fmt.Errorf("line %d: output before any command", n)
			}
			s := &steps[len(steps)-1]
			s.expect = append(s.expect, strings.TrimSpace(strings.TrimPrefix(line, "# →")))
		case strings.HasPrefix(line, "#"):
		default:
			s := readmeStep{line: pendingLine, cmd: line}
			if cmd, out, ok := strings.Cut(line, "# →"); ok {
				s.cmd = strings.TrimSpace(cmd)
				s.expect = []string{strings.TrimSpace(out)}
			} else if cmd, _, ok := strings.Cut(line, " #"); ok {
				s.cmd = strings.TrimSpace(cmd)
			}
			if m := assignRE.FindStringSubmatch(s.cmd); m != nil {
				s.assign, s.cmd = m[1], m[2]
			}
			steps = append(steps, s)
		}
	}
	for i := range steps {
		s := &steps[i]
		if len(s.expect) == 0 {
			continue
		}
		if m := exitRE.FindStringSubmatch(s.expect[len(s.expect)-1]); m != nil {
			s.exit, _ = strconv.Atoi(m[2])
			s.expect[len(s.expect)-1] = m[1]
		}
	}
	if inBlock {
		return nil, errors.New("unterminated ```sh block")
	}
	return steps, nil
}

// normalizeLines splits out into lines with runs of white space collapsed,
// dropping trailing empty lines.
func normalizeLines(out string) []string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	return lines
}

func TestParseQuickstart(t *testing.T) {
	readme := "# x\n```sh\n./bin/tenantkv ignored\n```\n" + quickstartMarker + " -->\ntext\n```sh\n" +
		"make run\n" +
		"./bin/tenantkv get k      # → v\n" +
		"# a comment\n" +
		"./bin/tenantkv scan\n# → a\t1\n# →   b 2\n" +
		"T=$(./bin/tenantkv tenant token acme)\n" +
		"./bin/tenantkv --token \"$T\" get x   # → tenantkv: not found (exit 1)\n" +
		"./bin/tenantkv serve --a 1 \\\n    --b 2\n" +
		"./bin/tenantkv put k v  # set it\n" +
		"```\n```go\nnot run\n```\n"
	steps, err := parseQuickstart(readme)
	if err != nil {
		t.Fatal(err)
	}
	want := []readmeStep{
		{line: 8, cmd: "make run"},
		{line: 9, cmd: "./bin/tenantkv get k", expect: []string{"v"}},
		{line: 11, cmd: "./bin/tenantkv scan", expect: []string{"a\t1", "b 2"}},
		{line: 14, cmd: "./bin/tenantkv tenant token acme", assign: "T"},
		{line: 15, cmd: `./bin/tenantkv --token "$T" get x`, expect: []string{"tenantkv: not found"}, exit: 1},
		{line: 16, cmd: "./bin/tenantkv serve --a 1 --b 2"},
		{line: 18, cmd: "./bin/tenantkv put k v"},
	}
	if len(steps) != len(want) {
		t.Fatalf("got %d steps, want %d: %+v", len(steps), len(want), steps)
	}
	for i := range want {
		g, w := steps[i], want[i]
		if g.line != w.line || g.cmd != w.cmd || g.assign != w.assign || g.exit != w.exit || !slices.Equal(g.expect, w.expect) {
			t.Errorf("step %d = %+v, want %+v", i, g, w)
		}
	}
	if _, err := parseQuickstart("no marker"); err == nil {
		t.Error("a README without the marker parsed")
	}
	if got := normalizeLines("a\t 1\n  b\n\n"); !slices.Equal(got, []string{"a 1", "b"}) {
		t.Errorf("normalizeLines = %q", got)
	}
}

// TestE2EReadme runs README.md's quickstart against live nodes.
func TestE2EReadme(t *testing.T) {
	skipShort(t)
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	steps, err := parseQuickstart(string(b))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	// The quickstart must keep showing what a newcomer needs.
	for _, must := range []string{"make run", "tenant create acme", "--tenant acme put hello world",
		"--tenant acme get hello", "scan", "tenant token acme", "serve", "--join", "cluster status",
		"tenant set", "--state read-only", "--read-only", "tenant tokens", "tenant revoke", "tenant export",
		"tenant import", "tenant rename", "token create", "token revoke"} {
		if !slices.ContainsFunc(steps, func(s readmeStep) bool { return strings.Contains(s.cmd, must) }) {
			t.Errorf("README.md quickstart has no command with %q", must)
		}
	}

	r := &readmeRun{t: t, dir: t.TempDir(), vars: map[string]string{}, addrs: map[string]string{}}
	// Every address of the README, and the defaults the first node takes.
	readmeAddrs := []string{"127.0.0.1:7400", "127.0.0.1:7401", "127.0.0.1:7402"}
	for _, s := range steps {
		readmeAddrs = append(readmeAddrs, addrRE.FindAllString(s.cmd, -1)...)
	}
	slices.Sort(readmeAddrs)
	r.allocate(slices.Compact(readmeAddrs))

	for _, s := range steps {
		t.Logf("README.md:%d: %s", s.line, s.cmd)
		switch {
		case s.cmd == "make run":
			// What `make run` runs, on the free ports standing in for the defaults.
			r.serve(s, "./bin/tenantkv serve --data ./data --listen 127.0.0.1:7400 --raft 127.0.0.1:7401 --http 127.0.0.1:7402")
		case strings.HasPrefix(s.cmd, "./bin/tenantkv serve "):
			r.serve(s, s.cmd)
		case strings.Contains(s.cmd, "./bin/tenantkv "):
			r.command(s)
		default:
			t.Fatalf("README.md:%d: the README test does not know how to run %q", s.line, s.cmd)
		}
	}
}

// readmeRun is the state of one run of the quickstart.
type readmeRun struct {
	t     *testing.T
	dir   string            // working directory of every command
	vars  map[string]string // set by NAME=$(…)
	addrs map[string]string // README address → free address
}

func (r *readmeRun) allocate(readmeAddrs []string) {
	for i, a := range freePorts(r.t, len(readmeAddrs)) {
		r.addrs[readmeAddrs[i]] = a
	}
}

// rewrite makes a README command runnable here.
func (r *readmeRun) rewrite(cmd string) string {
	cmd = strings.ReplaceAll(cmd, "./bin/tenantkv", shellJoin([]string{binPath}))
	return addrRE.ReplaceAllStringFunc(cmd, func(a string) string { return r.addrs[a] })
}

func (r *readmeRun) env() []string {
	env := []string{"TENANTKV_ENDPOINTS=" + r.addrs["127.0.0.1:7400"]} // the default address
	for k, v := range r.vars {
		env = append(env, k+"="+v)
	}
	return env
}

// serve starts a node in the background and waits until it is ready; if
// one of its ports was taken, it retries on others with a fresh data
// directory.
func (r *readmeRun) serve(s readmeStep, cmd string) {
	r.t.Helper()
	for attempt := 1; ; attempt++ {
		p := launch(r.t, fmt.Sprintf("README.md:%d", s.line), r.dir, childEnv(r.env()...), r.rewrite(cmd))
		err := p.waitReady(r.t.Context())
		if err == nil {
			return
		}
		if !errors.Is(err, errAddrInUse) || attempt == 3 {
			r.t.Fatalf("README.md:%d: %s: %v", s.line, s.cmd, err)
		}
		// New ports only for what this node listens on: the address it
		// joins through belongs to a node that is already running.
		f := strings.Fields(cmd)
		var own []string
		for i := 0; i+1 < len(f); i++ {
			switch f[i] {
			case "--listen", "--raft", "--http":
				own = append(own, f[i+1])
			}
		}
		if len(own) == 0 { // a node on the default addresses
			own = []string{"127.0.0.1:7400", "127.0.0.1:7401", "127.0.0.1:7402"}
		}
		r.allocate(own)
		if i := slices.Index(f, "--data"); i >= 0 && i+1 < len(f) {
			if err := os.RemoveAll(filepath.Join(r.dir, f[i+1])); err != nil {
				r.t.Fatal(err)
			}
		}
	}
}

// command runs a command and checks its exit status and output.
func (r *readmeRun) command(s readmeStep) {
	r.t.Helper()
	res := runProgram(r.t, r.dir, r.env(), "", "sh", "-c", r.rewrite(s.cmd))
	if res.code != s.exit {
		r.t.Fatalf("README.md:%d: %s: %v; want exit %d", s.line, s.cmd, res, s.exit)
	}
	out := res.stdout
	if s.exit != 0 {
		out = res.stderr
	}
	if s.expect != nil && !slices.Equal(normalizeLines(out), normalizeLines(strings.Join(s.expect, "\n"))) {
		r.t.Errorf("README.md:%d: %s printed\n%s\nREADME.md shows\n%s", s.line, s.cmd, out, strings.Join(s.expect, "\n"))
	}
	if s.assign != "" {
		r.vars[s.assign] = strings.TrimSpace(res.stdout)
	}
}
