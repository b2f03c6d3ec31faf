package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tenantkv/tenantkv/bench"
)

// benchUsage is the help of `tenantkv bench`.
const benchUsage = `usage:
  tenantkv bench [flags]                 run one workload
  tenantkv bench scenario NAME [flags]   run one scenario: isolation, noisy, scale, cluster
  tenantkv bench all [flags]             run every scenario into one report

Without --endpoints, bench starts a local cluster of real 'tenantkv serve'
processes (--local 1) on free ports of 127.0.0.1 and removes it afterwards.
Results go to stdout as a table, to --json FILE and to --html FILE (one
self-contained page with SVG plots). Latencies are in microseconds.

target flags:
  --local N            start a local cluster of N nodes (the cluster scenario uses 1 and 3)
  --endpoints LIST     comma-separated client addresses of a running cluster
  --token TOKEN        operator token (or env TENANTKV_TOKEN)
  --token-file FILE    file holding the operator token (or env TENANTKV_TOKEN_FILE)
  --server-binary PATH tenantkv binary the local nodes run (default: this one)

run flags:
  --duration D         measured time of each run or scenario point (default 10s)
  --warmup D           unmeasured warm-up before each (default 2s; 0 for none)
  --json FILE          write the report as JSON
  --html FILE          write the report as HTML
  --progress           show the live progress line even when stderr is not a terminal
  --seed N             seed of every random choice (default 1)

workload flags (tenantkv bench):
  --workload A|B|C|E|W A 50/50 read/update, B 95/5, C read only, E scans, W write only (default A)
  --keys N             keys over all tenants (default 100000)
  --key-size N         bytes per key (default 16)
  --value-size N       bytes per value (default 128)
  --tenants N          tenants, 1 to 1000000 (default 1)
  --tenant-skew D      uniform or zipfian choice of tenants (default uniform)
  --dist D             uniform or zipfian choice of keys (default uniform)
  --clients N          concurrent clients (default 16)
  --conns N            client connections the clients share (default min(clients, 4))
  --ops N              stop after N measured operations (with --duration, whichever first)
  --stale              stale reads, which any node may answer
  --no-load            skip the load phase that writes every key first
  --tenant-prefix P    tenant names are P000000, P000001, … (default bench-)
  --top N              busiest tenants to list (default 10)

scenario flags (tenantkv bench scenario, all):
  --tenant-counts LIST tenant counts of isolation and scale (default 1,1000,100000 and 10,10000,100000)
  --keys N             keys of every scenario (default: each scenario's own)
`

// benchCommand runs `tenantkv bench` with args, the words after "bench",
// writing the report table to stdout and progress to stderr. It returns the
// exit status: 0 on success, 1 when a run failed or was interrupted, 2 when
// the command line is wrong.
func benchCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	mode, name, rest := "workload", "", args
	if len(args) > 0 {
		switch args[0] {
		case "scenario":
			mode, rest = "scenario", args[1:]
			if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
				return benchUsageError(stderr, "bench scenario: missing scenario name (%s)", scenarioNames())
			}
			name, rest = rest[0], rest[1:]
			if _, ok := bench.LookupScenario(name); !ok {
				return benchUsageError(stderr, "bench scenario: unknown scenario %q (want %s)", name, scenarioNames())
			}
		case "all":
			mode, rest = "all", args[1:]
		case "help":
			fmt.Fprint(stdout, benchUsage)
			return 0
		}
	}
	var f benchFlags
	fs := newFlagSet("tenantkv bench")
	f.register(fs, mode == "workload")
	pos, err := parseInterspersed(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, benchUsage)
		return 0
	}
	if err != nil {
		return benchUsageError(stderr, "bench: %v", flagError(fs, err))
	}
	if len(pos) > 0 {
		return benchUsageError(stderr, "bench: unexpected argument %q", pos[0])
	}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	opts, err := f.options(stderr)
	if err != nil {
		return benchUsageError(stderr, "bench: %v", err)
	}
	report := bench.NewReport(append([]string{"tenantkv", "bench"}, args...))
	start := time.Now()

	var runErr error
	switch mode {
	case "workload":
		cfg, err := f.config()
		if err != nil {
			return benchUsageError(stderr, "bench: %v", err)
		}
		res, err := bench.RunWorkload(ctx, opts, cfg)
		if res != nil && len(res.Runs) > 0 {
			report.Scenarios = append(report.Scenarios, res)
		}
		runErr = err
	default:
		scenarios := bench.Scenarios()
		if mode == "scenario" {
			s, _ := bench.LookupScenario(name)
			scenarios = []bench.Scenario{s}
		}
		var plan bench.Plan
		for _, s := range scenarios {
			plan = plan.Add(s.Plan(opts))
		}
		report.PlannedSec = plan.Total().Seconds()
		fmt.Fprintf(opts.Status, "plan: %d measured points of %v (+%v warm-up): %v measured, about %v of setup: about %v in all\n",
			plan.Points, opts.Duration, max(opts.Warmup, 0), plan.Measured, plan.Setup.Round(time.Second), plan.Total().Round(time.Second))
		for _, s := range scenarios {
			res, err := s.Run(ctx, opts)
			if res != nil && len(res.Runs) > 0 {
				report.Scenarios = append(report.Scenarios, res)
			}
			if err != nil {
				fmt.Fprintln(opts.Status, errorLine(err))
				runErr = errors.Join(runErr, err)
			}
			if ctx.Err() != nil {
				break
			}
		}
	}
	report.ElapsedSec = time.Since(start).Seconds()
	if err := writeReports(report, f.jsonFile, f.htmlFile, stdout); err != nil {
		runErr = errors.Join(runErr, err)
	}
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "tenantkv: bench interrupted")
		return 1
	case runErr != nil:
		fmt.Fprintln(stderr, errorLine(runErr))
		return 1
	}
	return 0
}

func benchUsageError(stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "tenantkv: "+strings.TrimPrefix(format, "tenantkv: ")+"\n", args...)
	fmt.Fprintln(stderr, "Run 'tenantkv bench --help' for usage.")
	return 2
}

func scenarioNames() string {
	var names []string
	for _, s := range bench.Scenarios() {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

// writeReports writes the text table to stdout and the JSON and HTML
// files, if asked for.
func writeReports(r *bench.Report, jsonFile, htmlFile string, stdout io.Writer) error {
	var errs []error
	if len(r.Scenarios) > 0 {
		errs = append(errs, r.WriteText(stdout))
	}
	write := func(path string, f func(io.Writer) error) {
		if path == "" {
			return
		}
		out, err := os.Create(path)
		if err != nil {
			errs = append(errs, err)
			return
		}
		errs = append(errs, f(out), out.Close())
	}
	write(jsonFile, r.WriteJSON)
	write(htmlFile, r.WriteHTML)
	return errors.Join(errs...)
}

// benchFlags are the flags of `tenantkv bench`.
type benchFlags struct {
	set map[string]bool

	local                int
	endpoints            string
	token, tokenFile     string
	serverBinary         string
	duration, warmup     time.Duration
	jsonFile, htmlFile   string
	progress             bool
	seed                 uint64
	keys                 int
	tenantCounts         string
	workload             string
	keySize, valueSize   int
	tenants              int
	tenantSkew, keyDist  string
	clients, conns       int
	ops                  int64
	stale, noLoad        bool
	tenantPrefix         string
	top                  int
	maxScan, loadConcurr int
}

// register adds the flags to fs: the workload flags when workload is true,
// else the scenario flags.
func (f *benchFlags) register(fs *flag.FlagSet, workload bool) {
	f.set = map[string]bool{}
	fs.IntVar(&f.local, "local", 0, "start a local cluster of `N` nodes")
	fs.StringVar(&f.endpoints, "endpoints", "", "comma-separated client addresses of a running cluster")
	fs.StringVar(&f.token, "token", "", "operator token")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding the operator token")
	fs.StringVar(&f.serverBinary, "server-binary", "", "tenantkv binary local nodes run")
	fs.DurationVar(&f.duration, "duration", bench.DefaultDuration, "measured time of each run")
	fs.DurationVar(&f.warmup, "warmup", bench.DefaultWarmup, "warm-up before each run")
	fs.StringVar(&f.jsonFile, "json", "", "write the report as JSON to `FILE`")
	fs.StringVar(&f.htmlFile, "html", "", "write the report as HTML to `FILE`")
	fs.BoolVar(&f.progress, "progress", false, "show the live progress line")
	fs.Uint64Var(&f.seed, "seed", 1, "seed of every random choice")
	fs.IntVar(&f.keys, "keys", 0, "keys over all tenants")
	if !workload {
		fs.StringVar(&f.tenantCounts, "tenant-counts", "", "tenant counts of isolation and scale")
		return
	}
	fs.StringVar(&f.workload, "workload", "A", "workload: A, B, C, E or W")
	fs.IntVar(&f.keySize, "key-size", 16, "bytes per key")
	fs.IntVar(&f.valueSize, "value-size", 128, "bytes per value")
	fs.IntVar(&f.tenants, "tenants", 1, "number of tenants")
	fs.StringVar(&f.tenantSkew, "tenant-skew", "uniform", "choice of tenants: uniform or zipfian")
	fs.StringVar(&f.keyDist, "dist", "uniform", "choice of keys: uniform or zipfian")
	fs.IntVar(&f.clients, "clients", 16, "concurrent clients")
	fs.IntVar(&f.conns, "conns", 0, "client connections")
	fs.Int64Var(&f.ops, "ops", 0, "measured operations")
	fs.BoolVar(&f.stale, "stale", false, "stale reads")
	fs.BoolVar(&f.noLoad, "no-load", false, "skip the load phase")
	fs.StringVar(&f.tenantPrefix, "tenant-prefix", "bench-", "prefix of tenant names")
	fs.IntVar(&f.top, "top", 10, "busiest tenants to list")
	fs.IntVar(&f.maxScan, "max-scan", 100, "longest scan of workload E")
	fs.IntVar(&f.loadConcurr, "load-concurrency", 128, "requests in flight while loading")
}

// options resolves the target and the shared options.
func (f *benchFlags) options(stderr io.Writer) (bench.ScenarioOptions, error) {
	con := &benchConsole{w: stderr, tty: isTerminal(stderr)}
	o := bench.ScenarioOptions{Duration: f.duration, Warmup: f.warmup, Seed: f.seed, Keys: f.keys, Status: con}
	if con.tty || f.progress {
		o.Progress = con.progress
	}
	switch {
	case f.duration <= 0 && !(f.set["ops"] && f.ops > 0):
		return o, fmt.Errorf("--duration: must be positive, not %v", f.duration)
	case f.warmup < 0:
		return o, fmt.Errorf("--warmup: negative duration %v", f.warmup)
	case f.warmup == 0:
		o.Warmup = -1 // none
	}
	if f.set["ops"] && !f.set["duration"] {
		o.Duration = 0 // until --ops operations are done
	}
	for _, c := range splitList(f.tenantCounts) {
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 || n > bench.MaxTenants {
			return o, fmt.Errorf("--tenant-counts: %q is not a count from 1 to %d", c, bench.MaxTenants)
		}
		o.TenantCounts = append(o.TenantCounts, n)
	}
	endpoints := splitList(f.endpoints)
	switch {
	case f.local < 0:
		return o, fmt.Errorf("--local: negative node count %d", f.local)
	case f.local > 0 && len(endpoints) > 0:
		return o, errors.New("--local and --endpoints go separately")
	case len(endpoints) > 0:
		tok, err := f.resolveToken()
		if err != nil {
			return o, err
		}
		o.Target = bench.Target{Endpoints: endpoints, Token: tok}
		return o, nil
	case f.local == 0:
		f.local = 1
	}
	o.Local = f.local
	o.Binary = f.serverBinary
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("--server-binary: cannot find this executable: %w", err)
		}
		o.Binary = exe
	}
	return o, nil
}

// resolveToken finds the operator token: --token, --token-file,
// TENANTKV_TOKEN, TENANTKV_TOKEN_FILE, in that order.
func (f *benchFlags) resolveToken() (string, error) {
	switch {
	case f.set["token"]:
		return f.token, nil
	case f.set["token-file"]:
		return readTokenFile(f.tokenFile)
	case os.Getenv(envToken) != "":
		return os.Getenv(envToken), nil
	case os.Getenv(envTokenFile) != "":
		return readTokenFile(os.Getenv(envTokenFile))
	}
	return "", errors.New("no token: give --token or --token-file with --endpoints")
}

// config is the workload of `tenantkv bench` from the flags.
func (f *benchFlags) config() (bench.Config, error) {
	w, err := bench.ParseWorkload(f.workload)
	if err != nil {
		return bench.Config{}, fmt.Errorf("--workload: %w", err)
	}
	skew, err := bench.ParseDistribution(f.tenantSkew)
	if err != nil {
		return bench.Config{}, fmt.Errorf("--tenant-skew: %w", err)
	}
	dist, err := bench.ParseDistribution(f.keyDist)
	if err != nil {
		return bench.Config{}, fmt.Errorf("--dist: %w", err)
	}
	for name, v := range map[string]int{"keys": f.keys, "key-size": f.keySize, "value-size": f.valueSize,
		"tenants": f.tenants, "clients": f.clients, "conns": f.conns, "max-scan": f.maxScan,
		"load-concurrency": f.loadConcurr} {
		if v < 0 || (v == 0 && f.set[name]) {
			return bench.Config{}, fmt.Errorf("--%s: must be positive, not %d", name, v)
		}
	}
	if f.ops < 0 {
		return bench.Config{}, fmt.Errorf("--ops: must be positive, not %d", f.ops)
	}
	cfg := bench.Config{
		Workload: w, Keys: f.keys, KeySize: f.keySize, ValueSize: f.valueSize,
		Tenants: f.tenants, TenantPrefix: f.tenantPrefix, TenantSkew: skew, KeyDist: dist,
		Clients: f.clients, Conns: f.conns, Ops: f.ops, Stale: f.stale, SkipLoad: f.noLoad,
		MaxScan: f.maxScan, LoadConcurrency: f.loadConcurr, Seed: f.seed, TopTenants: f.top,
		Duration: f.duration, Warmup: f.warmup,
	}
	if f.set["ops"] && !f.set["duration"] {
		cfg.Duration = 0
	}
	if f.warmup == 0 {
		cfg.Warmup = -1
	}
	if f.top == 0 {
		cfg.TopTenants = -1
	}
	if err := cfg.Validate(); err != nil {
		return bench.Config{}, errors.New(strings.TrimPrefix(err.Error(), "bench: "))
	}
	return cfg, nil
}

// benchConsole writes status lines and the live progress line to stderr.
// On a terminal the progress line is redrawn in place and cleared before
// the next status line; elsewhere each update is a line of its own.
type benchConsole struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	pending bool // a progress line is on the screen
}

// Write writes status text, clearing the progress line first.
func (c *benchConsole) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending {
		io.WriteString(c.w, "\r\x1b[K")
		c.pending = false
	}
	return c.w.Write(p)
}

func (c *benchConsole) progress(p bench.Progress) {
	var b strings.Builder
	if p.Warmup {
		fmt.Fprintf(&b, "warm-up %.0fs/%.0fs", p.Elapsed.Seconds(), p.Total.Seconds())
	} else if p.Total > 0 {
		fmt.Fprintf(&b, "%.0fs/%.0fs", p.Elapsed.Seconds(), p.Total.Seconds())
	} else {
		fmt.Fprintf(&b, "%.0fs", p.Elapsed.Seconds())
	}
	for _, g := range p.Groups {
		if p.Warmup {
			fmt.Fprintf(&b, " | %s", g.Name)
			continue
		}
		fmt.Fprintf(&b, " | %s: %.0f ops/s, p99 %v", g.Name, g.OpsPerSec, g.P99.Round(time.Microsecond))
		if g.Errors > 0 {
			fmt.Fprintf(&b, ", %d errors", g.Errors)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tty {
		io.WriteString(c.w, "\r"+b.String()+"\x1b[K")
		c.pending = true
		return
	}
	io.WriteString(c.w, b.String()+"\n")
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
