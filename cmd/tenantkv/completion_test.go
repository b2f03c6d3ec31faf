package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// completionCase is a command line up to the cursor and words the
// completion must offer there (none: it must offer nothing, leaving the
// shell to complete files).
type completionCase struct {
	line string
	want []string
}

var completionCases = []completionCase{
	{"tenantkv ten", []string{"tenant"}},
	{"tenantkv tenant s", []string{"set", "show", "suspend"}},
	{"tenantkv tenant set acme --max-w", []string{"--max-watches"}},
	{"tenantkv tenant set acme --state r", []string{"read-only"}},
	{"tenantkv tenant list --state c", []string{"cancelled"}},
	{"tenantkv --tenant acme g", []string{"get"}},
	{"tenantkv --endpoints 127.0.0.1:7400,127.0.0.1:7410 cl", []string{"cluster"}},
	{"tenantkv cluster ", []string{"add", "health", "promote", "remove", "status", "transfer-leader"}},
	{"tenantkv get k --tok", []string{"--token", "--token-file"}},
	{"tenantkv serve --log-format ", []string{"json", "text"}},
	{"tenantkv serve --log-level ", []string{"debug", "error", "info", "warn"}},
	{"tenantkv serve --raft-log p", []string{"pebble"}},
	{"tenantkv serve --data ", nil},
	{"tenantkv serve --data ./d --li", []string{"--listen"}},
	{"tenantkv completion ", []string{"bash", "zsh"}},
	{"tenantkv --ver", []string{"--version"}},
	{"tenantkv --timeout 5s --json tok", []string{"token"}},
	{"tenantkv help tena", []string{"tenant"}},
	{"tenantkv get ", nil},
}

// completionScript writes the script of shell to a file and returns its
// path.
func completionScript(t *testing.T, shell string) string {
	t.Helper()
	code, out, stderr := runCLI(t, envMap(), "", "completion", shell)
	if code != 0 || stderr != "" {
		t.Fatalf("completion %s: exit %d, stderr %q", shell, code, stderr)
	}
	path := filepath.Join(t.TempDir(), "tenantkv."+shell)
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// allCompletionCases adds, for every command of the table, its words typed
// in part, and every flag of it typed in part: the scripts are made from
// the table, so that none is left out.
func allCompletionCases() []completionCase {
	cases := slices.Clone(completionCases)
	spec := completionSpec()
	for _, p := range spec.paths {
		words := strings.Fields(p)
		last := words[len(words)-1]
		line := strings.Join(append([]string{"tenantkv"}, words[:len(words)-1]...), " ") + " " + last[:len(last)-1]
		cases = append(cases, completionCase{line, []string{last}})
		for _, f := range spec.flags[p] {
			cases = append(cases, completionCase{"tenantkv " + p + " x " + f[:len(f)-1], []string{f}})
		}
	}
	return cases
}

// checkCompletions compares what a shell printed, one line per case (the
// words offered, space-separated and sorted), with the cases.
func checkCompletions(t *testing.T, shell string, cases []completionCase, out string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(cases) {
		t.Fatalf("%s printed %d lines for %d cases:\n%s", shell, len(lines), len(cases), out)
	}
	for i, c := range cases {
		got := strings.Fields(lines[i])
		slices.Sort(got)
		ok := len(c.want) == 0 && len(got) == 0
		for _, w := range c.want {
			ok = slices.Contains(got, w)
			if !ok {
				break
			}
		}
		if len(c.want) > 0 && len(completionCases) > i && !slices.Equal(got, c.want) {
			ok = false // the hand-written cases are exact
		}
		if !ok {
			t.Errorf("%s: %q completes to %q, want %q", shell, c.line, got, c.want)
		}
	}
}

func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script := completionScript(t, "bash")
	if out, err := exec.Command(bash, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	cases := allCompletionCases()
	var drive bytes.Buffer
	fmt.Fprintf(&drive, "source %s\n", shellJoin([]string{script}))
	for _, c := range cases {
		// What bash sets before calling the function.
		fmt.Fprintf(&drive, "COMP_LINE=%s; COMP_POINT=${#COMP_LINE}; COMPREPLY=(); _tenantkv; echo \"${COMPREPLY[*]}\"\n", shellJoin([]string{c.line}))
	}
	cmd := exec.Command(bash, "--norc", "--noprofile")
	cmd.Stdin = &drive
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	checkCompletions(t, "bash", cases, string(out))
}

func TestZshCompletion(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Skip("no zsh")
	}
	script := completionScript(t, "zsh")
	if out, err := exec.Command(zsh, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	cases := allCompletionCases()
	var drive bytes.Buffer
	// Outside a completion widget, compadd and _files are stand-ins:
	// compadd prints the words it was given that start with the word at
	// the cursor, as the real one offers them; compdef, which sourcing
	// calls, does nothing.
	fmt.Fprint(&drive, `compdef() { :; }
compadd() {
	[[ $1 == -- ]] && shift
	local p=${words[CURRENT]} x
	local -a m
	for x in "$@"; do [[ ${x[1,${#p}]} == "$p" ]] && m+=("$x"); done
	print -r -- "${m[*]}"
}
_files() { print; }
`)
	fmt.Fprintf(&drive, "source %s\n", shellJoin([]string{script}))
	for _, c := range cases {
		words := strings.Fields(c.line)
		if strings.HasSuffix(c.line, " ") {
			words = append(words, "")
		}
		fmt.Fprintf(&drive, "words=(%s); CURRENT=%d; _tenantkv\n", shellJoin(words), len(words))
	}
	cmd := exec.Command(zsh, "-f")
	cmd.Stdin = &drive
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("zsh: %v\n%s", err, out)
	}
	checkCompletions(t, "zsh", cases, string(out))
}

func TestCompletionUsage(t *testing.T) {
	code, _, stderr := runCLI(t, envMap(), "", "completion", "fish")
	if code != 2 || !strings.Contains(stderr, `"fish" is not bash or zsh`) {
		t.Errorf("completion fish: exit %d, stderr %q", code, stderr)
	}
	// The scripts list flags that take a value once: a flag must not be a
	// switch in one command and take a value in another.
	kinds := map[string]bool{}
	for _, c := range commands {
		commandFlags(c).VisitAll(func(f *flag.Flag) {
			if b, seen := kinds[f.Name]; seen && b != isBoolFlag(f) {
				t.Errorf("--%s is a switch in one command and takes a value in another", f.Name)
			}
			kinds[f.Name] = isBoolFlag(f)
		})
	}
}
