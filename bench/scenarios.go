package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tenantkv/tenantkv/client"
)

// The scenarios' fixed parameters; ScenarioOptions can change the tenant
// counts and the number of keys.
const (
	isolationKeys    = 100_000
	isolationClients = 32
	noisyKeys        = 10_000
	noisyVictimConc  = 8
	noisyAggrConc    = 64
	scaleKeys        = 100_000
	scaleClients     = 16
	clusterKeys      = 10_000
	clusterTenants   = 10
	clusterReadConc  = 64
)

func (o *ScenarioOptions) keys(def int) int {
	if o.Keys > 0 {
		return o.Keys
	}
	return def
}

func (o *ScenarioOptions) counts(def ...int) []int {
	if len(o.TenantCounts) > 0 {
		return o.TenantCounts
	}
	return def
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// ratio is a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func isolationScenario() Scenario {
	return Scenario{
		Name: "isolation",
		Description: "What isolation costs: the same total workload (C, read only, then W, write only; " +
			"16-byte keys, 128-byte values, uniform keys and tenants, the same keys in all) spread over " +
			"1, 1,000 and 100,000 tenants, compared with one tenant.",
		plan: func(o *ScenarioOptions) Plan {
			counts := o.counts(1, 1_000, 100_000)
			return planOf(o, 2*len(counts), 1, sum(counts), len(counts)*o.keys(isolationKeys))
		},
		run: func(ctx context.Context, env *scenarioEnv, res *ScenarioResult) error {
			counts := env.o.counts(1, 1_000, 100_000)
			keys := env.o.keys(isolationKeys)
			target, lc, err := env.cluster(ctx, 0)
			if err != nil {
				return err
			}
			defer lc.Close()
			res.Target = target.Description
			by := map[string][]*Result{}
			for _, n := range counts {
				base := Config{Keys: keys, Tenants: n, TenantPrefix: fmt.Sprintf("iso%d-", n),
					Clients: isolationClients, Conns: 4, TopTenants: 5}
				c, w := base, base
				c.Workload, c.Series, c.Name = WorkloadC, "C", "C, "+plural(n, "tenant")
				w.Workload, w.Series, w.Name = WorkloadW, "W", "W, "+plural(n, "tenant")
				w.SkipCreate, w.SkipLoad = true, true
				rc, err := env.run(ctx, res, target, c)
				if err != nil {
					return err
				}
				rw, err := env.run(ctx, res, target, w)
				if err != nil {
					return err
				}
				by["C"] = append(by["C"], rc[0])
				by["W"] = append(by["W"], rw[0])
				if n > 1 {
					res.Add(fmt.Sprintf("tenants created per second (%d tenants)", n), rc[0].Setup.CreatePerSec, "/s")
				}
				res.Add(fmt.Sprintf("keys loaded per second (%s)", plural(n, "tenant")), rc[0].Setup.LoadPerSec, "/s")
			}
			for _, wl := range []string{"C", "W"} {
				rs := by[wl]
				for i := 1; i < len(rs); i++ {
					res.Add(fmt.Sprintf("%s throughput, %d vs %d tenants", wl, counts[i], counts[0]),
						ratio(rs[i].Throughput, rs[0].Throughput), "x")
					res.Add(fmt.Sprintf("%s p99 latency, %d vs %d tenants", wl, counts[i], counts[0]),
						ratio(float64(rs[i].Latency.P99), float64(rs[0].Latency.P99)), "x")
				}
			}
			res.Note(fmt.Sprintf("%d keys in all, %d clients on 4 connections; with n tenants each tenant has %d/n keys.",
				keys, isolationClients, keys))
			return nil
		},
	}
}

func noisyScenario() Scenario {
	return Scenario{
		Name: "noisy",
		Description: "Noisy neighbour: a victim tenant (workload A, 8 clients) alone, then beside an " +
			"aggressor tenant writing flat out (workload W, 64 clients), then beside an aggressor held " +
			"to a tenth of that rate by its OpsPerSec limit.",
		plan: func(o *ScenarioOptions) Plan {
			return planOf(o, 3, 1, 3, o.keys(noisyKeys))
		},
		run: func(ctx context.Context, env *scenarioEnv, res *ScenarioResult) error {
			keys := env.o.keys(noisyKeys)
			target, lc, err := env.cluster(ctx, 0)
			if err != nil {
				return err
			}
			defer lc.Close()
			res.Target = target.Description
			victim := Config{Name: "victim alone", Series: "victim", Workload: WorkloadA, Keys: keys,
				TenantPrefix: "noisy-victim-", Clients: noisyVictimConc, Conns: 1}
			alone, err := env.run(ctx, res, target, victim)
			if err != nil {
				return err
			}
			victim.SkipCreate, victim.SkipLoad = true, true
			victim.Name = "victim beside aggressor"
			aggr := Config{Name: "aggressor, unlimited", Series: "aggressor", Workload: WorkloadW, Keys: keys,
				TenantPrefix: "noisy-aggr-", Clients: noisyAggrConc, Conns: 4, SkipLoad: true}
			noisy, err := env.run(ctx, res, target, victim, aggr)
			if err != nil {
				return err
			}
			limit := max(100, uint64(noisy[1].Throughput/10))
			victim.Name = "victim beside limited aggressor"
			aggr.Name = fmt.Sprintf("aggressor, limited to %d ops/s", limit)
			aggr.TenantPrefix = fmt.Sprintf("noisy-limit%d-", limit)
			aggr.TenantConfig = &client.TenantConfig{OpsPerSec: limit, Burst: limit}
			limited, err := env.run(ctx, res, target, victim, aggr)
			if err != nil {
				return err
			}
			v0, v1, v2 := alone[0], noisy[0], limited[0]
			res.Add("victim throughput beside aggressor vs alone", ratio(v1.Throughput, v0.Throughput), "x")
			res.Add("victim p99 beside aggressor vs alone", ratio(float64(v1.Latency.P99), float64(v0.Latency.P99)), "x")
			res.Add("victim throughput beside limited aggressor vs alone", ratio(v2.Throughput, v0.Throughput), "x")
			res.Add("victim p99 beside limited aggressor vs alone", ratio(float64(v2.Latency.P99), float64(v0.Latency.P99)), "x")
			res.Add("aggressor throughput, unlimited", noisy[1].Throughput, "ops/s")
			res.Add("aggressor throughput, limited", limited[1].Throughput, "ops/s")
			res.Add("aggressor limit", float64(limit), "ops/s")
			res.Add("aggressor operations refused as rate limited", float64(limited[1].RateLimited), "")
			if limited[1].RateLimited == 0 && limited[1].Throughput > 1.5*float64(limit) {
				res.Note(fmt.Sprintf("The server did not enforce the aggressor's limit: it ran at %.0f ops/s against "+
					"a limit of %d ops/s and no request was refused as rate limited.", limited[1].Throughput, limit))
			} else {
				res.Note("Rate-limited clients wait for the server's retry hint (at most 100ms) before going on.")
			}
			return nil
		},
	}
}

func scaleScenario() Scenario {
	return Scenario{
		Name: "scale",
		Description: "Many tenants: tenants created per second, memory per tenant (the resident set of " +
			"the node processes before and after creating them) and the latency of workload A spread " +
			"over 10, 10,000 and 100,000 tenants.",
		plan: func(o *ScenarioOptions) Plan {
			counts := o.counts(10, 10_000, 100_000)
			return planOf(o, len(counts), 1, counts[len(counts)-1], 0)
		},
		run: func(ctx context.Context, env *scenarioEnv, res *ScenarioResult) error {
			counts := env.o.counts(10, 10_000, 100_000)
			target, lc, err := env.cluster(ctx, 0)
			if err != nil {
				return err
			}
			defer lc.Close()
			res.Target = target.Description
			db, err := client.Open(ctx, target.Endpoints, &client.Options{Token: target.Token})
			if err != nil {
				return err
			}
			defer db.Close()
			const prefix = "scale-"
			have := 0
			var perTenant float64 // RSS growth per tenant over the largest creation step
			largest := 0
			for _, n := range counts {
				if n > have {
					names := make([]string, 0, n-have)
					for i := have; i < n; i++ {
						names = append(names, TenantName(prefix, i))
					}
					env.status("%s: creating tenants %d to %d", res.Name, have, n)
					before := meanRSS(lc)
					start := time.Now()
					created, _, err := CreateTenants(ctx, db, names, nil, 128, env.o.Status)
					if err != nil {
						return err
					}
					secs := time.Since(start).Seconds()
					after := meanRSS(lc)
					step := fmt.Sprintf("%d to %d tenants", have, n)
					res.Add("tenants created per second, "+step, float64(created)/secs, "/s")
					if before > 0 && after > 0 {
						res.Add("resident memory per node before creating "+step, float64(before)/(1<<20), "MiB")
						res.Add("resident memory per node after creating "+step, float64(after)/(1<<20), "MiB")
						if n-have > largest {
							largest = n - have
							perTenant = float64(after-before) / float64(n-have)
						}
					}
					have = n
				}
				cfg := Config{Name: "A, " + plural(n, "tenant"), Series: "A", Workload: WorkloadA,
					Keys: env.o.keys(scaleKeys), Tenants: n, TenantPrefix: prefix, Clients: scaleClients,
					SkipCreate: true, SkipLoad: true, TopTenants: 5}
				if _, err := env.run(ctx, res, target, cfg); err != nil {
					return err
				}
			}
			if largest > 0 {
				res.Add(fmt.Sprintf("resident memory per tenant (growth while creating %d tenants)", largest), perTenant, "bytes")
				res.Note("Resident memory is read from /proc/PID/status just before and after each creation step " +
					"and averaged over the nodes; the Go runtime's collector makes small steps noisy, so the " +
					"per-tenant figure comes from the largest step.")
			} else {
				res.Note("Memory per tenant needs a local cluster (--local): it reads the nodes' /proc/PID/status.")
			}
			if len(res.Runs) > 1 {
				first, last := res.Runs[0], res.Runs[len(res.Runs)-1]
				res.Add(fmt.Sprintf("p99 latency, %d vs %d tenants", counts[len(counts)-1], counts[0]),
					ratio(float64(last.Latency.P99), float64(first.Latency.P99)), "x")
			}
			res.Note("The runs skip the load phase: reads of keys not written yet are answered 'not found' and count as operations.")
			return nil
		},
	}
}

// meanRSS is the mean resident memory of the cluster's nodes, or 0 when it
// cannot be read (no local cluster, no /proc).
func meanRSS(lc *LocalCluster) int64 {
	if lc == nil {
		return 0
	}
	rss, err := lc.RSS()
	if err != nil || len(rss) == 0 {
		return 0
	}
	var total int64
	for _, r := range rss {
		total += r
	}
	return total / int64(len(rss))
}

// clusterSweep is the numbers of concurrent clients the cluster scenario
// writes with.
func clusterSweep() []int { return []int{1, 4, 16, 64, 256} }

func clusterScenario() Scenario {
	return Scenario{
		Name: "cluster",
		Description: "Replication: 1 node vs 3 nodes, writes (workload W) at 1, 4, 16, 64 and 256 " +
			"concurrent clients, and reads (workload C, 64 clients) linearizable vs stale.",
		plan: func(o *ScenarioOptions) Plan {
			rounds := 1
			if o.Local > 0 {
				rounds = 2
			}
			return planOf(o, rounds*(len(clusterSweep())+2), rounds, rounds*clusterTenants, rounds*o.keys(clusterKeys))
		},
		run: func(ctx context.Context, env *scenarioEnv, res *ScenarioResult) error {
			nodes := []int{0}
			if env.o.Local > 0 {
				nodes = []int{1, 3}
			} else {
				res.Note("1 node vs 3 nodes needs a local cluster (--local); this ran on the given cluster only.")
			}
			var rounds []*clusterRun
			for _, nn := range nodes {
				rd, err := clusterRound(ctx, env, res, nn)
				if err != nil {
					return err
				}
				rounds = append(rounds, rd)
			}
			for _, r := range rounds {
				res.Add("stale vs linearizable read throughput, "+r.label, ratio(r.stale.Throughput, r.lin.Throughput), "x")
			}
			if len(rounds) == 2 {
				a, b := rounds[0], rounds[1]
				for _, c := range clusterSweep() {
					res.Add(fmt.Sprintf("write throughput, %s vs %s, %s", b.label, a.label, plural(c, "client")),
						ratio(b.writes[c].Throughput, a.writes[c].Throughput), "x")
				}
				res.Add(fmt.Sprintf("linearizable read throughput, %s vs %s", b.label, a.label), ratio(b.lin.Throughput, a.lin.Throughput), "x")
				res.Add(fmt.Sprintf("stale read throughput, %s vs %s", b.label, a.label), ratio(b.stale.Throughput, a.stale.Throughput), "x")
			}
			res.Note("All nodes and the load generator share one machine: a 3-node cluster does three times the work on the same cores.")
			return nil
		},
	}
}

// clusterRun is one round of the cluster scenario, on one cluster.
type clusterRun struct {
	label  string
	writes map[int]*Result
	lin    *Result
	stale  *Result
}

// clusterRound measures writes at every concurrency and reads of both
// kinds on a cluster of nodes nodes (the given target when nodes is 0).
func clusterRound(ctx context.Context, env *scenarioEnv, res *ScenarioResult, nodes int) (*clusterRun, error) {
	target, lc, err := env.cluster(ctx, nodes)
	if err != nil {
		return nil, err
	}
	defer lc.Close()
	label := plural(nodes, "node")
	if nodes == 0 {
		label = target.Description
	}
	if res.Target == "" {
		res.Target = target.Description
	} else if !strings.Contains(res.Target, target.Description) {
		res.Target += "; " + target.Description
	}
	out := &clusterRun{label: label, writes: map[int]*Result{}}
	keys := env.o.keys(clusterKeys)
	for i, c := range clusterSweep() {
		cfg := Config{Name: fmt.Sprintf("W, %s, %s", label, plural(c, "client")), Series: "W, " + label,
			Workload: WorkloadW, Keys: keys, Tenants: clusterTenants, TenantPrefix: "cluster-",
			Clients: c, Conns: min(c, 4), SkipCreate: i > 0, SkipLoad: true, TopTenants: -1}
		r, err := env.run(ctx, res, target, cfg)
		if err != nil {
			return nil, err
		}
		out.writes[c] = r[0]
	}
	read := Config{Name: fmt.Sprintf("C linearizable, %s, %d clients", label, clusterReadConc), Series: "reads, " + label,
		Workload: WorkloadC, Keys: keys, Tenants: clusterTenants, TenantPrefix: "cluster-",
		Clients: clusterReadConc, Conns: 4, SkipCreate: true, TopTenants: -1}
	r, err := env.run(ctx, res, target, read)
	if err != nil {
		return nil, err
	}
	out.lin = r[0]
	read.Name = fmt.Sprintf("C stale, %s, %d clients", label, clusterReadConc)
	read.Stale, read.SkipLoad = true, true
	if r, err = env.run(ctx, res, target, read); err != nil {
		return nil, err
	}
	out.stale = r[0]
	return out, nil
}
