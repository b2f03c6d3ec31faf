package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Defaults of a scenario's measured points.
const (
	DefaultDuration = 10 * time.Second
	DefaultWarmup   = 2 * time.Second
)

// ScenarioOptions configure how a scenario runs. The zero value runs it on
// Target with the default durations.
type ScenarioOptions struct {
	// Local, when positive, runs the scenario on a local cluster of that
	// many nodes started with Binary (the cluster scenario starts its own
	// of 1 and 3 nodes); each scenario gets a fresh cluster. When zero,
	// the scenario runs on Target.
	Local  int
	Binary string
	Target Target
	// Duration and Warmup are those of every measured point; zero means
	// DefaultDuration and DefaultWarmup, a negative Warmup none.
	Duration, Warmup time.Duration
	// TenantCounts, if set, replaces the tenant counts of the isolation
	// and scale scenarios (1, 1,000, 100,000 and 10, 10,000, 100,000).
	TenantCounts []int
	// Keys, if set, replaces the number of keys of every scenario.
	Keys int
	// Seed makes the runs reproducible; zero means 1.
	Seed uint64
	// Status receives what the scenario is doing, line by line; nil
	// discards it.
	Status io.Writer
	// Progress is passed on to every run.
	Progress func(Progress)
}

func (o ScenarioOptions) withDefaults() ScenarioOptions {
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	if o.Warmup == 0 {
		o.Warmup = DefaultWarmup
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	return o
}

// Scenario is a named experiment made of several measured points.
type Scenario struct {
	Name        string
	Description string
	plan        func(o *ScenarioOptions) Plan
	run         func(ctx context.Context, env *scenarioEnv, res *ScenarioResult) error
}

// Plan is what a scenario will do: its measured points and an estimate of
// the time its setup (clusters, tenants, loading) takes.
type Plan struct {
	Points   int
	Measured time.Duration
	Setup    time.Duration
}

// Total is the planned time.
func (p Plan) Total() time.Duration { return p.Measured + p.Setup }

// Add returns the sum of two plans.
func (p Plan) Add(q Plan) Plan {
	return Plan{Points: p.Points + q.Points, Measured: p.Measured + q.Measured, Setup: p.Setup + q.Setup}
}

// Setup rates assumed by plans, medians measured on a busy 2-core machine;
// they only make the announced time roughly right.
const (
	planTenantsPerSec = 6_500
	planKeysPerSec    = 6_000
	planClusterStart  = 2 * time.Second
)

func planOf(o *ScenarioOptions, points, clusters, tenants, keys int) Plan {
	per := o.Duration + max(o.Warmup, 0)
	setup := time.Duration(tenants)*time.Second/planTenantsPerSec + time.Duration(keys)*time.Second/planKeysPerSec
	if o.Local > 0 {
		setup += time.Duration(clusters) * planClusterStart
	}
	return Plan{Points: points, Measured: time.Duration(points) * per, Setup: setup}
}

// Scenarios returns every scenario, in the order `bench all` runs them.
func Scenarios() []Scenario {
	return []Scenario{isolationScenario(), noisyScenario(), scaleScenario(), clusterScenario()}
}

// LookupScenario returns the scenario with the given name.
func LookupScenario(name string) (Scenario, bool) {
	for _, s := range Scenarios() {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

// Plan returns what the scenario will do with the options.
func (s Scenario) Plan(o ScenarioOptions) Plan {
	o = o.withDefaults()
	return s.plan(&o)
}

// Run runs the scenario and returns its result. A failed point ends the
// scenario with an error; local clusters are stopped and removed whatever
// happens.
func (s Scenario) Run(ctx context.Context, o ScenarioOptions) (*ScenarioResult, error) {
	o = o.withDefaults()
	if o.Local <= 0 && len(o.Target.Endpoints) == 0 {
		return nil, errors.New("bench: no target: give endpoints or a local cluster size")
	}
	env := &scenarioEnv{o: o}
	res := &ScenarioResult{Name: s.Name, Description: s.Description}
	start := time.Now()
	err := s.run(ctx, env, res)
	res.ElapsedSec = time.Since(start).Seconds()
	res.Finish()
	if err != nil {
		return res, fmt.Errorf("bench: scenario %s: %w", s.Name, err)
	}
	return res, nil
}

// RunWorkload runs one workload as a scenario named "workload", on a local
// cluster or on o.Target as o says.
func RunWorkload(ctx context.Context, o ScenarioOptions, cfg Config) (*ScenarioResult, error) {
	s := Scenario{
		Name:        "workload",
		Description: "One workload, as given on the command line.",
		run: func(ctx context.Context, env *scenarioEnv, res *ScenarioResult) error {
			target, lc, err := env.cluster(ctx, 0)
			if err != nil {
				return err
			}
			defer lc.Close()
			res.Target = target.Description
			_, err = env.run(ctx, res, target, cfg)
			return err
		},
	}
	return s.Run(ctx, o)
}

// scenarioEnv is what a scenario's steps share.
type scenarioEnv struct {
	o ScenarioOptions
}

// status writes a line of what the scenario does.
func (e *scenarioEnv) status(format string, args ...any) {
	if e.o.Status != nil {
		fmt.Fprintf(e.o.Status, format+"\n", args...)
	}
}

// cluster returns the target to measure: a new local cluster of nodes
// nodes (of Options.Local when nodes is zero), or else Options.Target with
// a nil *LocalCluster. The caller closes the local cluster.
func (e *scenarioEnv) cluster(ctx context.Context, nodes int) (Target, *LocalCluster, error) {
	if e.o.Local <= 0 {
		t := e.o.Target
		if t.Description == "" {
			t.Description = fmt.Sprintf("endpoints %v", t.Endpoints)
		}
		return t, nil, nil
	}
	if nodes == 0 {
		nodes = e.o.Local
	}
	lc, err := StartLocal(ctx, LocalOptions{Binary: e.o.Binary, Nodes: nodes, Status: e.o.Status})
	if err != nil {
		return Target{}, nil, err
	}
	return lc.Target(), lc, nil
}

// run runs one measured point of the scenario (several groups at once when
// given several configs), with the scenario's durations and seed, and
// appends its results to res.
func (e *scenarioEnv) run(ctx context.Context, res *ScenarioResult, target Target, cfgs ...Config) ([]*Result, error) {
	names := ""
	for i := range cfgs {
		c := &cfgs[i]
		if c.Duration == 0 && c.Ops == 0 {
			c.Duration = e.o.Duration
		}
		if c.Warmup == 0 {
			c.Warmup = e.o.Warmup
		}
		if c.Seed == 0 {
			c.Seed = e.o.Seed
		}
		if c.Name == "" {
			c.Name = c.withDefaults().Name
		}
		if i > 0 {
			names += " + "
		}
		names += c.Name
	}
	e.status("%s: %s", res.Name, names)
	out, err := RunGroups(ctx, target, cfgs, &RunOptions{Status: e.o.Status, Progress: e.o.Progress})
	if err != nil {
		return nil, err
	}
	res.Runs = append(res.Runs, out...)
	for _, r := range out {
		e.status("  %s", r.Summary())
	}
	return out, nil
}
