package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/tenantkv/tenantkv/client"
)

// The lifecycle commands: tenant activate, suspend, cancel and restore
// (docs/OPERATIONS.md, Lifecycle). The cluster decides each transition and
// refuses one the tenant's state does not allow, naming the allowed ones.

const lifecycleHelp = `States: trial (reads and writes until trial_ends), active, suspended (reads
only), cancelled (nothing: every token refused, data kept until purge_at),
and locked (the operator's emergency stop, outside the lifecycle).
  trial     -> active     tenant activate NAME
  trial     -> suspended  tenant suspend NAME, or when the trial ends
  active    -> suspended  tenant suspend NAME
  suspended -> active     tenant activate NAME
  trial, active, suspended -> cancelled   tenant cancel NAME [--retention D]
  cancelled -> suspended  tenant restore NAME (before purge_at)
  cancelled -> (purged)   when the retention ends; the ID is never reused
`

var tenantActivateCommand = &command{
	path: "tenant activate", args: "NAME",
	summary: "make a trial or suspended tenant active",
	long:    lifecycleHelp, minArgs: 1, maxArgs: 1,
	setup: noFlags(func(ctx context.Context, x *cli, args []string) error {
		return x.lifecycle(ctx, args[0], "activated", (*client.DB).ActivateTenant)
	}),
}

var tenantSuspendCommand = &command{
	path: "tenant suspend", args: "NAME",
	summary: "suspend a trial or active tenant: reads served, writes refused",
	long:    lifecycleHelp, minArgs: 1, maxArgs: 1,
	setup: noFlags(func(ctx context.Context, x *cli, args []string) error {
		return x.lifecycle(ctx, args[0], "suspended", (*client.DB).SuspendTenant)
	}),
}

var tenantRestoreCommand = &command{
	path: "tenant restore", args: "NAME",
	summary: "bring a cancelled tenant back, suspended, before its retention ends",
	long:    lifecycleHelp, minArgs: 1, maxArgs: 1,
	setup: noFlags(func(ctx context.Context, x *cli, args []string) error {
		return x.lifecycle(ctx, args[0], "restored", (*client.DB).RestoreTenant)
	}),
}

var tenantCancelCommand = &command{
	path: "tenant cancel", args: "NAME [--retention D]",
	summary: "cancel a tenant: refuse everything, keep its data for the retention, then purge it",
	long: lifecycleHelp + `
--retention is how long the data is kept (default 2160h, 90 days); 0 purges
at once, like 'tenant delete'.
`,
	minArgs: 1, maxArgs: 1,
	setup: setupTenantCancel,
}

func setupTenantCancel(fs *flag.FlagSet, _ func(string) string) runFunc {
	var retention = client.DefaultRetention
	fs.DurationVar(&retention, "retention", client.DefaultRetention, "keep the data for `D` before the purge (0: purge now)")
	return func(ctx context.Context, x *cli, args []string) error {
		if retention < 0 {
			return usagef(x.cmd, "--retention: negative duration %v", retention)
		}
		return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
			t, err := db.CancelTenant(ctx, args[0], retention)
			if err != nil {
				return err
			}
			if t == nil {
				fmt.Fprintf(x.stdout, "cancelled tenant %s: purged\n", args[0])
				return nil
			}
			fmt.Fprintf(x.stdout, "cancelled tenant %s: purge_at %s\n", t.Name, formatTime(t.PurgeAt))
			return nil
		})
	}
}

// lifecycle runs one lifecycle action and prints the tenant's new state.
func (x *cli) lifecycle(ctx context.Context, name, done string, act func(*client.DB, context.Context, string) (*client.TenantInfo, error)) error {
	return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		t, err := act(db, ctx, name)
		if err != nil {
			return err
		}
		fmt.Fprintf(x.stdout, "%s tenant %s: state %s\n", done, t.Name, t.State)
		return nil
	})
}

// checkStateFlag refuses a --state that is not one of allowed.
func checkStateFlag(x *cli, state string, allowed ...string) error {
	if state == "" {
		return nil
	}
	for _, s := range allowed {
		if s == state {
			return nil
		}
	}
	return usagef(x.cmd, "--state: %q is not one of %v", state, allowed)
}
