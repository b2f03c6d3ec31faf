// Package bench is tenantkv's load generator: workloads in the YCSB
// tradition, run by many concurrent clients against a cluster through the
// client library, with latencies recorded in HdrHistograms and reported as
// text, JSON and a self-contained HTML page.
//
// It imports only the client package of tenantkv: it measures what an
// application sees, over the network, and links neither the server nor the
// store.
//
// # Workloads
//
// A workload (Config) is a mix of operations (A: 50% reads and 50% updates,
// B: 95/5, C: read only, E: 95% short scans of 1 to 100 keys and 5%
// updates, W: write only) over Keys keys spread evenly over Tenants tenants,
// each operation choosing its tenant and its key uniformly or by a zipfian
// law (YCSB's generator, seeded, see Zipfian). Keys, values and tenant
// handles are made before the run, so the measured loop only picks and
// calls. Clients goroutines each run a closed loop over Conns shared
// client.DB connections. A run creates its tenants and loads every key once
// (a load phase, which may be skipped), warms up, then measures for a
// duration or a number of operations. Several workloads can run side by
// side in one measured window (RunGroups), which is how the noisy-neighbour
// scenario puts a victim beside an aggressor.
//
// # Results
//
// A Result holds throughput, latency percentiles in microseconds, errors
// by class (a read of a missing key is an answer, not an error;
// rate-limited operations are counted apart), a per-second time series, a
// percentile curve and the busiest tenants. Scenarios gather runs into a
// ScenarioResult with derived figures (ratios, rates) and notes; a Report
// gathers scenarios with the machine, the date and the command line, and
// writes itself as text (WriteText), JSON (WriteJSON) or HTML with inline
// SVG plots (WriteHTML), which loads nothing from the network.
//
// # Scenarios
//
// isolation, noisy, scale and cluster (see Scenarios) each answer one
// question about the cost of multi-tenancy or replication. With
// ScenarioOptions.Local they start their own cluster of real `tenantkv
// serve` processes (StartLocal) on free ports of 127.0.0.1 and remove it
// afterwards.
//
// # Concurrency
//
// Run, RunGroups and Scenario.Run block until the measurement is over or
// their context ends; they may be called from several goroutines, each run
// having its own connections and statistics. Progress callbacks come from
// one goroutine at a time.
package bench
