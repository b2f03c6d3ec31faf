// Command etcdbench measures tenantkv and etcd side by side, in one run, on
// one machine: the same workloads (W write only, C linearizable reads only,
// A half and half; 16-byte keys, 128-byte values), at the same client
// concurrencies, on local clusters of the same sizes, and reports every
// figure and the ratios tenantkv/etcd as a table, as JSON and as HTML.
//
// tenantkv is measured by the bench package (bench.StartLocal, bench.Run),
// etcd by a runner in this command with the same operation generator and
// the same HdrHistogram accounting. Both run closed loops of Clients
// goroutines sharing min(Clients, --conns) connections round robin: for
// tenantkv a client.DB each, for etcd a clientv3.Client each (one gRPC
// connection per endpoint). Both systems' clusters of a size run at once
// and the systems alternate point by point, so that other work on a shared
// machine slows both alike; with --interleave=false each system's cluster
// runs alone, started, measured at every point and stopped before the
// other's starts.
//
// It lives in its own Go module so that tenantkv's module does not depend
// on etcd. bench/etcd/run.sh (make bench-etcd) builds etcd and both
// binaries and runs it.
//
// Usage:
//
//	etcdbench --tenantkv-binary bin/tenantkv --etcd-binary PATH [flags]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tenantkv/tenantkv/bench"
	"github.com/tenantkv/tenantkv/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command's flags, parsed.
type options struct {
	tenantkvBin, etcdBin string
	systems              []string
	nodes                []int
	workloads            []bench.Workload
	clients              []int
	conns                int
	keys                 int
	keySize, valueSize   int
	duration, warmup     time.Duration
	seed                 uint64
	dir                  string
	jsonFile, htmlFile   string
	profileDir           string
	etcdLeaderOnly       bool
	interleave           bool
}

// run runs the command and returns its exit status: 0 when every point was
// measured, 1 when one failed or the run was interrupted, 2 for a bad
// command line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "etcdbench:", err)
		return 2
	}
	planned := time.Duration(len(o.systems)*len(o.nodes)*len(o.workloads)*len(o.clients)) * (o.duration + o.warmup)
	fmt.Fprintf(stderr, "plan: %d points of %v (+%v warm-up): about %v measured, plus clusters and loading\n",
		len(o.systems)*len(o.nodes)*len(o.workloads)*len(o.clients), o.duration, o.warmup, planned)

	report := &Report{
		Report:      bench.NewReport(append([]string{"etcdbench"}, args...)),
		EtcdVersion: etcdVersion(o.etcdBin),
		Method: []string{
			orderNote(o.interleave),
			fmt.Sprintf("Both: closed loops of N goroutines, one operation at a time each, sharing min(N, %d) connections round robin: tenantkv client.DB instances (one TCP connection per node, following the leader), etcd clientv3.Client instances (one gRPC connection per endpoint).", o.conns),
			etcdBalanceNote(o.etcdLeaderOnly),
			"Reads are linearizable on both (tenantkv's default; etcd Get without WithSerializable). Updates are tenantkv Set and etcd Put of one key.",
			fmt.Sprintf("%d keys of %d bytes, values of %d random bytes, uniform choice of keys, loaded once per cluster before its first point; seed %d; each point %v measured after %v of warm-up.", o.keys, o.keySize, o.valueSize, o.seed, o.duration, o.warmup),
		},
	}
	start := time.Now()
	results := map[point]*bench.Result{}
	elapsed := map[point]float64{}
	loads := map[point]float64{}
	var runErr error
	record := func(p point, r *bench.Result, d time.Duration, load float64) {
		results[p], elapsed[p], loads[p] = r, d.Seconds(), load
	}
	for _, n := range o.nodes {
		if ctx.Err() != nil {
			break
		}
		if err := measureSize(ctx, o, n, record, stderr); err != nil {
			fmt.Fprintf(stderr, "etcdbench: %v\n", err)
			runErr = errors.Join(runErr, err)
		}
	}
	report.ElapsedSec = time.Since(start).Seconds()
	report.Comparisons = compare(results, loads, o.nodes, o.workloads, o.clients, o.conns)
	report.Targets = checkTargets(report.Comparisons)
	report.Scenarios = scenarios(o, results, elapsed, report.Comparisons, report.Targets)

	var errs []error
	errs = append(errs, report.WriteText(stdout))
	fmt.Fprintln(stdout)
	errs = append(errs, writeTable(stdout, report.Comparisons, report.Targets))
	errs = append(errs, writeFile(o.jsonFile, report.WriteJSON), writeFile(o.htmlFile, report.Report.WriteHTML))
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(stderr, "etcdbench:", err)
		runErr = errors.Join(runErr, err)
	}
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "etcdbench: interrupted")
		return 1
	case runErr != nil:
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("etcdbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	var systems, nodes, workloads, clients string
	fs.StringVar(&o.tenantkvBin, "tenantkv-binary", "bin/tenantkv", "tenantkv binary the local nodes run")
	fs.StringVar(&o.etcdBin, "etcd-binary", "", "etcd binary (3.6) the local members run")
	fs.StringVar(&systems, "systems", "tenantkv,etcd", "systems to measure")
	fs.StringVar(&nodes, "nodes", "1,3", "cluster sizes")
	fs.StringVar(&workloads, "workloads", "W,C,A", "workloads: W, C and A")
	fs.StringVar(&clients, "clients", "1,16,128", "concurrent clients")
	fs.IntVar(&o.conns, "conns", 4, "connections the clients share, at most one per client")
	fs.IntVar(&o.keys, "keys", 100_000, "keys")
	fs.IntVar(&o.keySize, "key-size", 16, "bytes per key")
	fs.IntVar(&o.valueSize, "value-size", 128, "bytes per value")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of each point")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "warm-up before each point")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of every random choice")
	fs.StringVar(&o.dir, "dir", "", "where clusters keep their data (default: the system's temporary directory)")
	fs.StringVar(&o.jsonFile, "json", "", "write the report as JSON to `FILE`")
	fs.StringVar(&o.htmlFile, "html", "", "write the report as HTML to `FILE`")
	fs.StringVar(&o.profileDir, "profile", "", "take a CPU profile of each leader during every measured point into `DIR` (skews the figures)")
	fs.BoolVar(&o.etcdLeaderOnly, "etcd-leader-only", false, "give etcd clients only the leader's endpoint (default: every member, etcd's default balancing)")
	fs.BoolVar(&o.interleave, "interleave", true, "run both systems' clusters of a size at once and alternate point by point, so that other work on the machine slows both alike (false: each cluster alone, one after the other)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	for _, s := range splitList(systems) {
		if s != sysTenantKV && s != sysEtcd {
			return nil, fmt.Errorf("--systems: unknown system %q (want tenantkv, etcd)", s)
		}
		o.systems = append(o.systems, s)
	}
	if o.nodes, err = positiveInts("nodes", nodes); err != nil {
		return nil, err
	}
	if o.clients, err = positiveInts("clients", clients); err != nil {
		return nil, err
	}
	for _, s := range splitList(workloads) {
		w, err := bench.ParseWorkload(s)
		if err != nil || (w != bench.WorkloadW && w != bench.WorkloadC && w != bench.WorkloadA) {
			return nil, fmt.Errorf("--workloads: %q is not W, C or A", s)
		}
		o.workloads = append(o.workloads, w)
	}
	switch {
	case len(o.systems) == 0 || len(o.workloads) == 0:
		return nil, errors.New("--systems and --workloads: need at least one")
	case o.conns < 1, o.keys < 1, o.keySize < 1, o.valueSize < 0:
		return nil, errors.New("--conns, --keys, --key-size: must be positive")
	case o.duration <= 0 || o.warmup < 0:
		return nil, errors.New("--duration must be positive and --warmup not negative")
	case slices.Contains(o.systems, sysEtcd) && o.etcdBin == "":
		return nil, errors.New("--etcd-binary: needed to measure etcd")
	}
	return o, nil
}

// config is the workload of one point, every field set.
func (o *options) config(sys string, w bench.Workload, clients int, first bool) bench.Config {
	warmup := o.warmup
	if warmup == 0 {
		warmup = -1 // none, in bench.Config's terms
	}
	return bench.Config{
		Name:         sys + ", " + plural(clients, "client"),
		Series:       sys,
		Workload:     w,
		Keys:         o.keys,
		KeySize:      o.keySize,
		ValueSize:    o.valueSize,
		Tenants:      1,
		TenantPrefix: "vs-etcd-",
		TenantSkew:   bench.Uniform,
		KeyDist:      bench.Uniform,
		Clients:      clients,
		Conns:        min(clients, o.conns),
		Duration:     o.duration,
		Warmup:       warmup,
		SkipCreate:   !first,
		SkipLoad:     !first,
		// Loading: as many puts in flight as the largest point has clients.
		LoadConcurrency: 128,
		Seed:            o.seed,
		TopTenants:      -1,
	}
}

// session is one system's cluster of one size, started and ready to
// measure points on. The first point a session measures loads the keys.
type session interface {
	// measure runs one point and returns its result.
	measure(ctx context.Context, w bench.Workload, clients int) (*bench.Result, error)
	Close() error
}

// openSession starts sys's cluster of n nodes.
func openSession(ctx context.Context, o *options, sys string, n int, status io.Writer) (session, error) {
	if sys == sysTenantKV {
		lc, err := bench.StartLocal(ctx, bench.LocalOptions{Binary: o.tenantkvBin, Nodes: n, Dir: o.dir, Status: status})
		if err != nil {
			return nil, err
		}
		return &tenantkvSession{o: o, n: n, lc: lc, target: lc.Target(), status: status}, nil
	}
	var ec *etcdCluster
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		ec, err = startEtcd(ctx, etcdOptions{Binary: o.etcdBin, Members: n, Dir: o.dir, Pprof: o.profileDir != "", Status: status})
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	target := etcdTarget{Endpoints: ec.Endpoints(), Description: "local etcd, " + nodesLabel(n)}
	if o.etcdLeaderOnly {
		leader, err := ec.Leader(ctx)
		if err != nil {
			ec.Close()
			return nil, err
		}
		target.Endpoints = []string{leader}
	}
	return &etcdSession{o: o, n: n, ec: ec, target: target, status: status}, nil
}

// tenantkvSession is a local tenantkv cluster, measured by bench.Run.
type tenantkvSession struct {
	o      *options
	n      int
	lc     *bench.LocalCluster
	target bench.Target
	status io.Writer
	loaded bool
}

func (s *tenantkvSession) measure(ctx context.Context, w bench.Workload, c int) (*bench.Result, error) {
	cfg := s.o.config(sysTenantKV, w, c, !s.loaded)
	s.loaded = true
	prof := s.o.profiler(point{sysTenantKV, s.n, w, c}, func(ctx context.Context) (string, error) {
		return tenantkvLeaderPprof(ctx, s.target)
	})
	res, err := bench.Run(ctx, s.target, cfg, &bench.RunOptions{Status: s.status, Progress: func(pr bench.Progress) {
		if !pr.Warmup {
			prof.start(ctx)
		}
	}})
	prof.wait(s.status)
	if err != nil {
		return nil, err
	}
	res.Target = s.target.Description
	return res, nil
}

func (s *tenantkvSession) Close() error { return s.lc.Close() }

// etcdSession is a local etcd cluster, measured by runEtcd.
type etcdSession struct {
	o      *options
	n      int
	ec     *etcdCluster
	target etcdTarget
	status io.Writer
	loaded bool
}

func (s *etcdSession) measure(ctx context.Context, w bench.Workload, c int) (*bench.Result, error) {
	cfg := s.o.config(sysEtcd, w, c, !s.loaded)
	prof := s.o.profiler(point{sysEtcd, s.n, w, c}, func(ctx context.Context) (string, error) {
		ep, err := s.ec.Leader(ctx)
		return ep + "/debug/pprof/profile", err
	})
	res, err := runEtcd(ctx, s.target, cfg, etcdRunOptions{Load: !s.loaded, Status: s.status,
		Measuring: func() { prof.start(ctx) }})
	prof.wait(s.status)
	s.loaded = true
	return res, err
}

func (s *etcdSession) Close() error { return s.ec.Close() }

// measureSize measures every point on clusters of n nodes: each system's
// cluster alone, one after the other, or, with --interleave, both
// clusters up at once and the systems alternating point by point.
func measureSize(ctx context.Context, o *options, n int, record func(point, *bench.Result, time.Duration, float64), status io.Writer) error {
	var errs []error
	run := func(s session, sys string, w bench.Workload, c int) error {
		fmt.Fprintf(status, "%s, %s, %s, %s\n", sys, nodesLabel(n), w, plural(c, "client"))
		load := loadAvg()
		start := time.Now()
		res, err := s.measure(ctx, w, c)
		if err != nil {
			return fmt.Errorf("%s, %s, %s, %s: %w", sys, nodesLabel(n), w, plural(c, "client"), err)
		}
		fmt.Fprintf(status, "  %s\n", res.Summary())
		record(point{sys, n, w, c}, res, time.Since(start), load)
		return nil
	}
	if !o.interleave {
		for _, sys := range o.systems {
			s, err := openSession(ctx, o, sys, n, status)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s, %s: %w", sys, nodesLabel(n), err))
				continue
			}
		points:
			for _, w := range o.workloads {
				for _, c := range o.clients {
					if err := run(s, sys, w, c); err != nil {
						errs = append(errs, err)
						break points
					}
				}
			}
			errs = append(errs, s.Close())
		}
		return errors.Join(errs...)
	}
	sessions := map[string]session{}
	defer func() {
		for _, s := range sessions {
			s.Close()
		}
	}()
	for _, sys := range o.systems {
		s, err := openSession(ctx, o, sys, n, status)
		if err != nil {
			return fmt.Errorf("%s, %s: %w", sys, nodesLabel(n), err)
		}
		sessions[sys] = s
	}
	for _, w := range o.workloads {
		for _, c := range o.clients {
			for _, sys := range o.systems {
				if err := run(sessions[sys], sys, w, c); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// scenarios groups the results as the bench package's report does: one
// scenario per cluster size and workload, holding both systems' runs, the
// ratios as figures and the target checks as notes.
func scenarios(o *options, results map[point]*bench.Result, elapsed map[point]float64, cmps []Comparison, targets []TargetCheck) []*bench.ScenarioResult {
	var out []*bench.ScenarioResult
	for _, n := range o.nodes {
		for _, w := range o.workloads {
			mix, _ := w.Mix()
			s := &bench.ScenarioResult{
				Name: fmt.Sprintf("%s, %s", w, nodesLabel(n)),
				Description: fmt.Sprintf("Workload %s (%.0f%% reads, linearizable; %.0f%% updates) on tenantkv and on etcd, %s each, at %s clients.",
					w, 100*mix.Read, 100*mix.Update, nodesLabel(n), joinInts(o.clients)),
				Target: fmt.Sprintf("local tenantkv, %s; local etcd, %s", nodesLabel(n), nodesLabel(n)),
			}
			for _, sys := range o.systems {
				for _, c := range o.clients {
					p := point{sys, n, w, c}
					if r := results[p]; r != nil {
						s.Runs = append(s.Runs, r)
						s.ElapsedSec += elapsed[p]
					}
				}
			}
			if len(s.Runs) == 0 {
				continue
			}
			for _, c := range cmps {
				if c.Nodes != n || c.Workload != string(w) || c.TenantKV == nil || c.Etcd == nil {
					continue
				}
				s.Add("throughput tenantkv/etcd, "+plural(c.Clients, "client"), c.ThroughputRatio, "x")
				s.Add("p99 tenantkv/etcd, "+plural(c.Clients, "client"), c.P99Ratio, "x")
			}
			for _, t := range targets {
				if t.Nodes != n || t.Workload != string(w) {
					continue
				}
				verdict := "met"
				if !t.Met {
					verdict = "missed: " + t.Shortfall
				}
				info := ""
				if !t.Binding {
					info = " (the target is stated for 3 nodes; for information)"
				}
				s.Note(fmt.Sprintf("Target %s at %s%s: %s.", t.Want, plural(t.Clients, "client"), info, verdict))
			}
			s.Finish()
			out = append(out, s)
		}
	}
	return out
}

// profiler takes one CPU profile of a leader during a measured point, when
// --profile is set; otherwise its methods do nothing.
type profiler struct {
	path    string
	seconds int
	url     func(ctx context.Context) (string, error)
	started bool
	done    chan error
}

func (o *options) profiler(p point, url func(ctx context.Context) (string, error)) *profiler {
	if o.profileDir == "" {
		return &profiler{}
	}
	name := fmt.Sprintf("%s-%s-%dn-%dc.pprof", p.system, p.workload, p.nodes, p.clients)
	return &profiler{path: filepath.Join(o.profileDir, name), url: url,
		seconds: max(1, int(o.duration.Seconds())-2), done: make(chan error, 1)}
}

// start begins the profile the first time it is called.
func (p *profiler) start(ctx context.Context) {
	if p.path == "" || p.started {
		return
	}
	p.started = true
	go func() { p.done <- p.fetch(ctx) }()
}

func (p *profiler) fetch(ctx context.Context) error {
	u, err := p.url(ctx)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(u, "http") {
		u = "http://" + u
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"?seconds="+strconv.Itoa(p.seconds), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile from %s: %s", u, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(p.path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(p.path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// wait waits for the profile, if one was started, and reports where it is.
func (p *profiler) wait(status io.Writer) {
	if !p.started {
		return
	}
	if err := <-p.done; err != nil {
		fmt.Fprintf(status, "  profile: %v\n", err)
		return
	}
	fmt.Fprintf(status, "  profile: %s\n", p.path)
}

// tenantkvLeaderPprof returns the CPU profile URL of the tenantkv leader,
// found through the cluster status (every node of a bench.StartLocal
// cluster runs with --debug and serves /debug/pprof on its HTTP address).
func tenantkvLeaderPprof(ctx context.Context, t bench.Target) (string, error) {
	db, err := client.Open(ctx, t.Endpoints, &client.Options{Token: t.Token})
	if err != nil {
		return "", err
	}
	defer db.Close()
	st, err := db.ClusterStatus(ctx)
	if err != nil {
		return "", err
	}
	for _, m := range st.Members {
		if m.ID == st.LeaderID && m.HTTPAddr != "" {
			return "http://" + m.HTTPAddr + "/debug/pprof/profile", nil
		}
	}
	return "", fmt.Errorf("no HTTP address for leader %q", st.LeaderID)
}

// etcdVersion returns the first line of `etcd --version`, or "" if etcd
// does not run.
func etcdVersion(bin string) string {
	if bin == "" {
		return ""
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

func orderNote(interleave bool) string {
	const where = "Local clusters of the same sizes on 127.0.0.1, data in the same directory; the load generator shares the machine. "
	if interleave {
		return where + "Both systems' clusters of a size are up at once and the systems alternate point by point (the default), so that other work on the machine falls on both alike; the idle cluster's heartbeats fall on the measured one."
	}
	return where + "Each system's cluster runs alone (--interleave=false): started, measured at every point, stopped before the other system's starts."
}

func etcdBalanceNote(leaderOnly bool) string {
	if leaderOnly {
		return "etcd clients are given only the leader's endpoint (--etcd-leader-only)."
	}
	return "etcd clients are given every member's endpoint (client i starts at member i) and balance requests over them round robin, etcd's default; followers forward writes to the leader and serve linearizable reads after a read index from it."
}

func writeFile(path string, f func(io.Writer) error) error {
	if path == "" {
		return nil
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	return errors.Join(f(out), out.Close())
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func positiveInts(name, s string) ([]int, error) {
	var out []int
	for _, p := range splitList(s) {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--%s: %q is not a positive number", name, p)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--%s: empty list", name)
	}
	return out, nil
}

func joinInts(xs []int) string {
	var s []string
	for _, x := range xs {
		s = append(s, strconv.Itoa(x))
	}
	return strings.Join(s, ", ")
}
