package main

// The operations docs test keeps docs/OPERATIONS.md, docs/prometheus-alerts.yml
// and deploy/ true to the binary:
//
//   - every `tenantkv …` command line in a code block of OPERATIONS.md, and
//     deploy/tenantkv.service's ExecStart, parses as the binary parses it:
//     the command exists, every flag is one of its flags (or a global one),
//     every flag value is of the flag's kind, the positional arguments fit;
//   - every code span naming a command (`cluster remove NODE-ID`, `tenantkv
//     snapshot save`) names one that exists, with flags of that command;
//   - every other --flag in a code span or block is a flag of some command;
//   - every TENANTKV_ variable is a flag's (deploy/tenantkv.env too);
//   - every alert the doc names is a rule of prometheus-alerts.yml, and every
//     rule is named in the doc;
//   - every link to a heading of the doc, or to a file beside it, leads
//     somewhere.
//
// Lines of other programs (git, openssl, systemctl, …) are not checked.

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// docCode is one piece of code of a Markdown document: a code span, or a
// line of a code block with its continuations joined.
type docCode struct {
	line  int
	text  string
	block bool
}

var (
	spanRE    = regexp.MustCompile("`([^`\n]+)`")
	fenceRE   = regexp.MustCompile("^\\s*```")
	envVarRE  = regexp.MustCompile(`\bTENANTKV_[A-Z][A-Z0-9_]*`)
	alertRE   = regexp.MustCompile(`\bTenantkv[A-Z][A-Za-z0-9]*`)
	ruleRE    = regexp.MustCompile(`(?m)^\s*-\s*alert:\s*(\S+)\s*$`)
	linkRE    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	headingRE = regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*$`)
	cronRE    = regexp.MustCompile(`^[0-9*/,-]+$`)
	assignWRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)
)

// docCodes returns the code spans and code block lines of md.
func docCodes(md string) []docCode {
	var out []docCode
	inBlock := false
	pending, pendingLine := "", 0
	for i, raw := range strings.Split(md, "\n") {
		n := i + 1
		if fenceRE.MatchString(raw) {
			inBlock = !inBlock
			pending = ""
			continue
		}
		if !inBlock {
			for _, m := range spanRE.FindAllStringSubmatch(raw, -1) {
				out = append(out, docCode{line: n, text: m[1]})
			}
			continue
		}
		line := strings.TrimSpace(raw)
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
		out = append(out, docCode{line: pendingLine, text: line, block: true})
	}
	return out
}

// shellWords splits a shell line into its commands' words. Quotes are
// removed; $(…) and <(…) become one word X, and what they hold is returned
// as lines of their own in inner; a # at the start of a word begins the
// comment; && || ; | & and redirections end or skip words.
func shellWords(line string) (cmds [][]string, inner []string, comment string) {
	var words []string
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, cur.String())
		}
		cur.Reset()
		inWord = false
	}
	end := func() {
		flush()
		if len(words) > 0 {
			cmds = append(cmds, words)
		}
		words = nil
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		case c == '\'' || c == '"':
			j := strings.IndexByte(line[i+1:], c)
			if j < 0 {
				j = len(line) - i - 1
			}
			cur.WriteString(line[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case (c == '$' || c == '<') && i+1 < len(line) && line[i+1] == '(':
			depth, j := 0, i+1
			for ; j < len(line); j++ {
				if line[j] == '(' {
					depth++
				} else if line[j] == ')' {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			if j > len(line)-1 {
				j = len(line) - 1
			}
			inner = append(inner, line[i+2:j])
			cur.WriteByte('X')
			inWord = true
			i = j
		case c == '#' && !inWord:
			end()
			return cmds, inner, line[i+1:]
		case c == ' ' || c == '\t':
			flush()
		case c == ';' || c == '|' || c == '&':
			end()
		case c == '>' || c == '<':
			// A redirection: skip its target (and a 2>&1).
			flush()
			for i+1 < len(line) && (line[i+1] == '>' || line[i+1] == '&') {
				i++
			}
			for i+1 < len(line) && line[i+1] == ' ' {
				i++
			}
			for i+1 < len(line) && line[i+1] != ' ' {
				i++
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	end()
	return cmds, inner, ""
}

// foreignPrograms are commands of other programs whose flags the docs may
// name; their lines are not checked.
var foreignPrograms = []string{"git", "go", "make", "openssl", "systemctl", "journalctl", "systemd-analyze",
	"promtool", "useradd", "install", "curl", "grep", "chmod", "source", "export", "cat", "rm", "ls"}

// commandStart strips what comes before a command's program in words: a
// cron schedule and variable assignments.
func commandStart(words []string) []string {
	if len(words) > 5 && !slices.ContainsFunc(words[:5], func(w string) bool { return !cronRE.MatchString(w) }) {
		words = words[5:]
	}
	for len(words) > 0 && assignWRE.MatchString(words[0]) {
		words = words[1:]
	}
	return words
}

func isTenantkv(word string) bool { return word == "tenantkv" || strings.HasSuffix(word, "/tenantkv") }

// flagTokens returns the --flag words of text, without brackets,
// ellipses, values or trailing punctuation.
func flagTokens(text string) []string {
	var out []string
	for _, w := range strings.Fields(text) {
		w = strings.Trim(w, "[]()…,.;:\"'`")
		w, _, _ = strings.Cut(w, "=")
		w = strings.TrimRight(w, "…,.;:)]")
		if strings.HasPrefix(w, "--") && len(w) > 2 && unicode.IsLetter(rune(w[2])) {
			out = append(out, w)
		}
	}
	return out
}

// opsChecker holds what the binary accepts.
type opsChecker struct {
	allFlags map[string]bool // every flag of every command, with its dashes
	envVars  map[string]bool
	// parsed counts the command lines parsed, spans counts the code spans
	// checked against a command: a doc whose code the checker cannot
	// read must not pass for one without mistakes.
	parsed, spans int
}

func newOpsChecker() *opsChecker {
	c := &opsChecker{allFlags: map[string]bool{"--version": true, "--help": true}, envVars: map[string]bool{
		// Read by tests, which the doc shows how to run.
		"TENANTKV_MEASURE_SNAPSHOT": true, "TENANTKV_SEED": true,
	}}
	for _, cmd := range commands {
		commandFlags(cmd).VisitAll(func(f *flag.Flag) { c.allFlags["--"+f.Name] = true })
	}
	// Every serve flag, and the global flags that read one, from the
	// environment.
	fs := newFlagSet("serve")
	serveCommand.setup(fs, func(string) string { return "" })
	fs.VisitAll(func(f *flag.Flag) { c.envVars[envName(f.Name)] = true })
	for _, v := range []string{envEndpoints, envToken, envTokenFile, envTenant, envTLSCA, envTLSCert, envTLSKey} {
		c.envVars[v] = true
	}
	return c
}

// knownFlag reports whether some command has flag name, which may end in
// a * standing for any rest (--peer-tls-*).
func (c *opsChecker) knownFlag(name string) bool {
	if prefix, ok := strings.CutSuffix(name, "*"); ok {
		for f := range c.allFlags {
			if strings.HasPrefix(f, prefix) {
				return true
			}
		}
		return false
	}
	return c.allFlags[name]
}

// parseLine parses args (after the program's name) as the binary does,
// without running anything, and returns the error.
func parseLine(args []string) error {
	args = slices.DeleteFunc(slices.Clone(args), func(a string) bool { return a == "…" || a == "..." })
	x := &cli{env: func(string) string { return "" }, stdin: strings.NewReader(""), stdout: io.Discard,
		stderr: io.Discard, set: map[string]bool{}}
	_, _, _, err := x.parse(args)
	return err
}

// checkSpan checks a code span: one naming a command must name a real one,
// with flags of it; in any other, every flag must be some command's.
func (c *opsChecker) checkSpan(text string) []string {
	words := strings.Fields(strings.NewReplacer("[", " ", "]", " ", "…", " ").Replace(text))
	if len(words) == 0 || slices.Contains(foreignPrograms, words[0]) {
		return nil
	}
	prefixed := isTenantkv(words[0])
	if prefixed {
		words = words[1:]
	}
	cmdWords, _ := splitCommand(words)
	cmd := lookup(cmdWords)
	switch {
	case cmd == nil && prefixed && len(cmdWords) > 0:
		return []string{fmt.Sprintf("`%s`: no command %q", text, strings.Join(cmdWords, " "))}
	case cmd == nil && !prefixed && len(cmdWords) == 2 && isGroup(cmdWords[0]) && !isPlaceholder(cmdWords[1]) && isSynopsis(words):
		// `snapshot take FILE`, not a log message such as `cluster
		// format raised`.
		return []string{fmt.Sprintf("`%s`: no command %q", text, strings.Join(cmdWords, " "))}
	case cmd == nil:
		return c.checkFlagsAnywhere(text)
	}
	c.spans++
	fs := commandFlags(cmd)
	var bad []string
	for _, f := range flagTokens(text) {
		if fs.Lookup(strings.TrimPrefix(f, "--")) == nil && !(f == "--version" && len(cmdWords) == 0) {
			bad = append(bad, fmt.Sprintf("`%s`: %s is not a flag of %q", text, f, cmd.path))
		}
	}
	return bad
}

// isPlaceholder reports whether a word stands for a value (NAME, FILE).
func isPlaceholder(w string) bool { return w == strings.ToUpper(w) }

// isSynopsis reports whether words look like a command's synopsis: they
// have a flag or a placeholder.
func isSynopsis(words []string) bool {
	return slices.ContainsFunc(words, func(w string) bool {
		return strings.HasPrefix(w, "--") || (isPlaceholder(w) && strings.ContainsFunc(w, unicode.IsLetter))
	})
}

// checkFlagsAnywhere checks that every flag of text is some command's.
func (c *opsChecker) checkFlagsAnywhere(text string) []string {
	var bad []string
	for _, f := range flagTokens(text) {
		if !c.knownFlag(f) {
			bad = append(bad, fmt.Sprintf("%q: %s is no flag of any tenantkv command", text, f))
		}
	}
	return bad
}

// checkBlockLine checks a line of a code block: its tenantkv commands
// must parse, and flags elsewhere (comments, output) must exist.
func (c *opsChecker) checkBlockLine(text string) []string {
	cmds, inner, comment := shellWords(text)
	bad := c.checkFlagsAnywhere(comment)
	for _, in := range inner {
		bad = append(bad, c.checkBlockLine(in)...)
	}
	for _, words := range cmds {
		words = commandStart(words)
		switch {
		case len(words) == 0 || slices.Contains(foreignPrograms, words[0]):
		case isTenantkv(words[0]):
			if len(words) == 1 {
				continue // the program's name in prose
			}
			c.parsed++
			if err := parseLine(words[1:]); err != nil {
				bad = append(bad, fmt.Sprintf("%q: %v", text, err))
			}
		default:
			bad = append(bad, c.checkFlagsAnywhere(strings.Join(words, " "))...)
		}
	}
	return bad
}

// checkEnv checks that every TENANTKV_ variable of text is a flag's.
func (c *opsChecker) checkEnv(text string) []string {
	var bad []string
	for _, v := range envVarRE.FindAllString(text, -1) {
		if !c.envVars[v] {
			bad = append(bad, fmt.Sprintf("%s is no flag's environment variable", v))
		}
	}
	return bad
}

// checkOpsDoc returns what is wrong in md against the binary and the
// alerting rules rules; exists reports whether a linked file exists.
func (c *opsChecker) checkOpsDoc(md, rules string, exists func(string) bool) []string {
	var bad []string
	for _, code := range docCodes(md) {
		var probs []string
		if code.block {
			probs = c.checkBlockLine(code.text)
		} else {
			probs = c.checkSpan(code.text)
		}
		probs = append(probs, c.checkEnv(code.text)...)
		for _, p := range probs {
			bad = append(bad, fmt.Sprintf("line %d: %s", code.line, p))
		}
	}

	named := map[string]bool{}
	for _, a := range alertRE.FindAllString(md, -1) {
		named[a] = true
	}
	defined := map[string]bool{}
	for _, m := range ruleRE.FindAllStringSubmatch(rules, -1) {
		defined[m[1]] = true
	}
	for a := range named {
		if !defined[a] {
			bad = append(bad, fmt.Sprintf("alert %s is not a rule of prometheus-alerts.yml", a))
		}
	}
	for a := range defined {
		if !named[a] {
			bad = append(bad, fmt.Sprintf("rule %s of prometheus-alerts.yml is not explained", a))
		}
	}

	anchors := headingAnchors(md)
	for _, m := range linkRE.FindAllStringSubmatch(md, -1) {
		target := m[1]
		switch {
		case strings.Contains(target, "://"):
		case strings.HasPrefix(target, "#"):
			if !anchors[strings.TrimPrefix(target, "#")] {
				bad = append(bad, fmt.Sprintf("link %s: no such heading", target))
			}
		default:
			path, _, _ := strings.Cut(target, "#")
			if !exists(path) {
				bad = append(bad, fmt.Sprintf("link %s: no such file", target))
			}
		}
	}
	slices.Sort(bad)
	return bad
}

// headingAnchors returns the anchors of md's headings, as GitHub makes
// them: lower case, spaces as '-', other punctuation dropped, and -1, -2
// for repeats.
func headingAnchors(md string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	inBlock := false
	for _, line := range strings.Split(md, "\n") {
		if fenceRE.MatchString(line) {
			inBlock = !inBlock
		}
		m := headingRE.FindStringSubmatch(line)
		if inBlock || m == nil {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(m[1]) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteByte('-')
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			out[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

// checkUnit returns what is wrong in a systemd unit: its ExecStart must
// run tenantkv with a command line the binary accepts.
func (c *opsChecker) checkUnit(unit string) []string {
	var bad []string
	found := false
	unit = strings.ReplaceAll(unit, "\\\n", " ")
	for _, line := range strings.Split(unit, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "ExecStart=")
		if !ok {
			continue
		}
		found = true
		words := strings.Fields(strings.TrimLeft(rest, "-@:+!"))
		if len(words) == 0 || !isTenantkv(words[0]) {
			bad = append(bad, fmt.Sprintf("ExecStart does not run tenantkv: %q", rest))
			continue
		}
		c.parsed++
		if err := parseLine(words[1:]); err != nil {
			bad = append(bad, fmt.Sprintf("ExecStart %q: %v", rest, err))
		}
		bad = append(bad, c.checkEnv(rest)...)
	}
	if !found {
		bad = append(bad, "no ExecStart")
	}
	return bad
}

// checkEnvFile returns what is wrong in an environment file: every
// variable must be a flag's.
func (c *opsChecker) checkEnvFile(env string) []string {
	var bad []string
	for i, line := range strings.Split(env, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, ok := strings.Cut(line, "=")
		if !ok || !c.envVars[name] {
			bad = append(bad, fmt.Sprintf("line %d: %q is not a flag's variable", i+1, line))
		}
	}
	return bad
}

func readRepoFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestOpsDocMatchesBinary checks docs/OPERATIONS.md, the alerting rules and
// deploy/ against the commands and flags of this binary.
func TestOpsDocMatchesBinary(t *testing.T) {
	c := newOpsChecker()
	md := readRepoFile(t, "docs/OPERATIONS.md")
	exists := func(p string) bool {
		_, err := os.Stat(filepath.Join("..", "..", "docs", p))
		return err == nil
	}
	for _, p := range c.checkOpsDoc(md, readRepoFile(t, "docs/prometheus-alerts.yml"), exists) {
		t.Errorf("docs/OPERATIONS.md: %s", p)
	}
	t.Logf("docs/OPERATIONS.md: %d command lines parsed, %d code spans checked against their command", c.parsed, c.spans)
	if c.parsed < 20 || c.spans < 20 {
		t.Errorf("the checker found only %d command lines and %d command spans: it no longer reads the doc", c.parsed, c.spans)
	}
	// The doc must keep showing a production deployment.
	codes := docCodes(md)
	for _, must := range []string{"cluster remove", "cluster add", "--non-voter", "cluster promote", "--force-new-cluster",
		"snapshot save", "snapshot restore", "snapshot verify", "--peer-tls-ca", "--tls-cert", "--join", "cluster status"} {
		if !slices.ContainsFunc(codes, func(c docCode) bool { return strings.Contains(c.text, must) }) {
			t.Errorf("docs/OPERATIONS.md shows no %q", must)
		}
	}
	for _, p := range c.checkUnit(readRepoFile(t, "deploy/tenantkv.service")) {
		t.Errorf("deploy/tenantkv.service: %s", p)
	}
	for _, p := range c.checkEnvFile(readRepoFile(t, "deploy/tenantkv.env")) {
		t.Errorf("deploy/tenantkv.env: %s", p)
	}
}

// TestOpsDocCheckerFindsMistakes: the checker refuses each kind of
// mistake, and passes the same lines written right.
func TestOpsDocCheckerFindsMistakes(t *testing.T) {
	c := newOpsChecker()
	rules := "groups:\n  - name: g\n    rules:\n      - alert: TenantkvNoLeader\n        expr: x\n"
	exists := func(p string) bool { return p == "METRICS.md" }
	good := "# Ops\n\n## Lost quorum: `serve --force-new-cluster`\n\n" +
		"See [lost quorum](#lost-quorum-serve---force-new-cluster) and [METRICS.md](METRICS.md#x).\n" +
		"Run `tenantkv cluster remove n3`, `cluster add NODE-ID RAFT-ADDR [--non-voter]`, set `--peer-tls-*`\n" +
		"and `TENANTKV_PEER_TLS_CA`; `git describe --tags` is git's. `TenantkvNoLeader` fires.\n" +
		"```sh\n" +
		"tenantkv serve --data /var/lib/tenantkv --raft 10.0.0.1:7401 \\\n  --join 10.0.0.2:7400 …\n" +
		"17 3 * * * TENANTKV_ENDPOINTS=a:1 tenantkv snapshot save --rate 32MiB /b/s-$(date -u +\\%Y).tkvsnap && tenantkv snapshot verify x\n" +
		"source <(tenantkv completion bash)   # or --json\n" +
		"tenantkv tenant export acme > acme.tkvx\n" +
		"install -m 0755 tenantkv /usr/local/bin/tenantkv\n" +
		"tenantkv: refused: give --peer-tls-cert, or --insecure-peers\n" +
		"```\n"
	if bad := c.checkOpsDoc(good, rules, exists); len(bad) > 0 {
		t.Errorf("a right doc was refused:\n%s", strings.Join(bad, "\n"))
	}
	for _, tc := range []struct{ name, doc, want string }{
		{"a flag no command has, in a span", "Use `--peer-tls-certs`.\n`TenantkvNoLeader`", "--peer-tls-certs is no flag"},
		{"another command's flag", "`cluster remove NODE-ID --non-voter`\n`TenantkvNoLeader`", `--non-voter is not a flag of "cluster remove"`},
		{"a command that does not exist", "`tenantkv cluster destroy`\n`TenantkvNoLeader`", `no command "cluster destroy"`},
		{"a group without that subcommand", "`snapshot take FILE`\n`TenantkvNoLeader`", `no command "snapshot take"`},
		{"an unknown flag in a command line", "```sh\ntenantkv serve --dta /x\n```\n`TenantkvNoLeader`", "--dta"},
		{"a flag value of the wrong kind", "```sh\ntenantkv snapshot save --rate fast f\n```\n`TenantkvNoLeader`", "--rate"},
		{"too many arguments", "```sh\ntenantkv cluster remove n1 n2\n```\n`TenantkvNoLeader`", "too many arguments"},
		{"a command inside $(…)", "```sh\nT=$(tenantkv tenant token acme --forever)\n```\n`TenantkvNoLeader`", "--forever"},
		{"a flag in a comment", "```sh\ntenantkv cluster status  # then --purge\n```\n`TenantkvNoLeader`", "--purge is no flag"},
		{"an unknown variable", "`TENANTKV_DATADIR=/x`\n`TenantkvNoLeader`", "TENANTKV_DATADIR is no flag's"},
		{"an alert that is no rule", "`TenantkvNoLeader`, `TenantkvOnFire`", "alert TenantkvOnFire is not a rule"},
		{"a rule the doc does not name", "nothing", "rule TenantkvNoLeader of prometheus-alerts.yml is not explained"},
		{"a link to no heading", "[x](#nowhere)\n`TenantkvNoLeader`", "link #nowhere: no such heading"},
		{"a link to no file", "[x](NOPE.md)\n`TenantkvNoLeader`", "link NOPE.md: no such file"},
	} {
		bad := c.checkOpsDoc(tc.doc, rules, exists)
		if !slices.ContainsFunc(bad, func(p string) bool { return strings.Contains(p, tc.want) }) {
			t.Errorf("%s: not found (want %q), got %q", tc.name, tc.want, bad)
		}
	}

	unit := "[Service]\nExecStart=/usr/local/bin/tenantkv serve --data /var/lib/tenantkv \\\n  --log-format json\n"
	if bad := c.checkUnit(unit); len(bad) > 0 {
		t.Errorf("a right unit was refused: %q", bad)
	}
	for _, u := range []string{
		"[Service]\nExecStart=/usr/local/bin/tenantkv serve --data /var/lib/tenantkv --log-formt json\n",
		"[Service]\nExecStart=/usr/bin/etcd\n",
		"[Service]\n",
	} {
		if bad := c.checkUnit(u); len(bad) == 0 {
			t.Errorf("a wrong unit was accepted:\n%s", u)
		}
	}
	if bad := c.checkEnvFile("# x\nTENANTKV_NODE_ID=n1\nTENANTKV_MEMORY_BUDGET=1GiB\n"); len(bad) > 0 {
		t.Errorf("a right environment file was refused: %q", bad)
	}
	if bad := c.checkEnvFile("TENANTKV_NODEID=n1\n"); len(bad) == 0 {
		t.Error("an environment file with a variable of no flag was accepted")
	}
}

// TestAlertRulesPromtool checks docs/prometheus-alerts.yml with Prometheus's
// own promtool, when it is installed (Debian: package prometheus): the rules
// must load, and the cases of docs/prometheus-alerts-test.yml must fire the
// alerts they expect and no others.
func TestAlertRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed")
	}
	docs := filepath.Join("..", "..", "docs")
	for _, args := range [][]string{
		{"check", "rules", "prometheus-alerts.yml"},
		{"test", "rules", "prometheus-alerts-test.yml"},
	} {
		cmd := exec.CommandContext(t.Context(), promtool, args...)
		cmd.Dir = docs
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
