package proof

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// totals counts what every scenario of this test binary did, for the soak
// summary. Scenarios add to it as they finish.
var totals struct {
	Histories  atomic.Int64 // per-key histories checked with porcupine
	Operations atomic.Int64 // operations in those histories, plus load operations
	Unchecked  atomic.Int64 // histories porcupine could not decide in time
	Faults     atomic.Int64 // faults injected by a nemesis
	Crashes    atomic.Int64 // nodes killed (Close in process, SIGKILL of a process)
	Pauses     atomic.Int64 // SIGSTOP/SIGCONT pauses
	Attacks    atomic.Int64 // hostile or isolation-attack requests and connections
	Tenants    atomic.Int64 // tenants whose data was compared with a model
	Violations atomic.Int64 // broken promises found (must stay 0)
	Runs       atomic.Int64 // scenario runs
}

// summary renders totals, one figure per line.
func summary(elapsed time.Duration) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "tenantkv proof summary (%s on %s)\n", elapsed.Round(time.Second), host)
	for _, row := range []struct {
		name string
		v    int64
	}{
		{"scenario runs", totals.Runs.Load()},
		{"histories checked", totals.Histories.Load()},
		{"histories unchecked (timeout)", totals.Unchecked.Load()},
		{"operations", totals.Operations.Load()},
		{"faults injected", totals.Faults.Load()},
		{"crashes (kill/restart)", totals.Crashes.Load()},
		{"pauses (SIGSTOP)", totals.Pauses.Load()},
		{"attack attempts", totals.Attacks.Load()},
		{"tenants compared to a model", totals.Tenants.Load()},
		{"violations", totals.Violations.Load()},
	} {
		fmt.Fprintf(&b, "  %-32s %d\n", row.name, row.v)
	}
	return b.String()
}
