package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tenantkv/tenantkv/client"
)

// The tenant commands need an operator token, but for `tenant show` of a
// tenant token's own tenant.

// tenantConfigFlags are the limit and label flags of `tenant create` and
// `tenant set`.
type tenantConfigFlags struct {
	maxBytes, maxKeys, opsPerSec, burst, maxConcurrent uint64
	maxConnections, maxWatches                         uint64
	labels                                             labelFlag
}

// limitFlagNames are the limit flags, in the order help shows them.
var limitFlagNames = []string{"max-bytes", "max-keys", "ops-per-sec", "burst", "max-concurrent", "max-connections", "max-watches"}

func (f *tenantConfigFlags) register(fs *flag.FlagSet, zeroMeans string) {
	fs.Uint64Var(&f.maxBytes, "max-bytes", 0, "store at most `N` logical bytes (keys + values); 0: "+zeroMeans)
	fs.Uint64Var(&f.maxKeys, "max-keys", 0, "store at most `N` keys; 0: "+zeroMeans)
	fs.Uint64Var(&f.opsPerSec, "ops-per-sec", 0, "serve at most `N` requests per second, sustained; 0: "+zeroMeans)
	fs.Uint64Var(&f.burst, "burst", 0, "allow `N` requests above --ops-per-sec in a burst; 0: "+zeroMeans)
	fs.Uint64Var(&f.maxConcurrent, "max-concurrent", 0, "serve at most `N` requests at once; 0: "+zeroMeans)
	fs.Uint64Var(&f.maxConnections, "max-connections", 0, "accept at most `N` connections of the tenant on each node; 0: the node's --max-connections-per-tenant")
	fs.Uint64Var(&f.maxWatches, "max-watches", 0, "let the tenant have at most `N` watches open at once on each node; 0: the default, 100")
	f.labels = labelFlag{}
	fs.Var(f.labels, "label", "set the label `KEY=VALUE`; repeatable")
}

// labelFlag collects repeated --label KEY=VALUE flags.
type labelFlag map[string]string

func (l labelFlag) String() string {
	if len(l) == 0 {
		return ""
	}
	return formatLabels(l)
}

func (l labelFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not KEY=VALUE", s)
	}
	l[k] = v
	return nil
}

var tenantCreateCommand = &command{
	path:    "tenant create",
	args:    "NAME [--trial D] [--max-bytes N] [--max-keys N] [--ops-per-sec N] [--burst N] [--max-concurrent N] [--max-connections N] [--max-watches N] [--label K=V]...",
	summary: "create a tenant, with limits and labels, active or in trial",
	long: `NAME is 1-63 of a-z, 0-9 and '-', not starting or ending with '-'. Limits
left out (or 0) mean unlimited, but --max-connections (0: the node's
--max-connections-per-tenant) and --max-watches (0: 100 per node). Storage limits are exact: a write that would
take the tenant past --max-bytes (keys plus values) or --max-keys is refused
as a whole; deletes are always allowed. With --trial D the tenant starts in
state trial and is suspended D later (trial_ends) unless 'tenant activate'
comes first; without it the tenant is active.
`,
	minArgs: 1, maxArgs: 1,
	setup: setupTenantCreate,
}

func setupTenantCreate(fs *flag.FlagSet, _ func(string) string) runFunc {
	var f tenantConfigFlags
	var trial time.Duration
	fs.DurationVar(&trial, "trial", 0, "start in trial, suspended after `D` (such as 336h) unless activated")
	f.register(fs, "unlimited")
	return func(ctx context.Context, x *cli, args []string) error {
		if trial < 0 || (x.set["trial"] && trial == 0) {
			return usagef(x.cmd, "--trial: %v is not a positive duration", trial)
		}
		cfg := &client.TenantConfig{
			MaxBytes: f.maxBytes, MaxKeys: f.maxKeys, OpsPerSec: f.opsPerSec, Burst: f.burst,
			MaxConcurrent: f.maxConcurrent, MaxConnections: f.maxConnections, MaxWatches: f.maxWatches,
			Trial: trial,
		}
		if len(f.labels) > 0 {
			cfg.Labels = f.labels
		}
		return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
			t, err := db.CreateTenant(ctx, args[0], cfg)
			if err != nil {
				return err
			}
			if t.State == client.StateTrial {
				fmt.Fprintf(x.stdout, "created tenant %s (id %d): trial until %s\n", t.Name, t.ID, formatTime(t.TrialEnds))
				return nil
			}
			fmt.Fprintf(x.stdout, "created tenant %s (id %d)\n", t.Name, t.ID)
			return nil
		})
	}
}

var tenantSetCommand = &command{
	path:    "tenant set",
	args:    "NAME [--state S] [--max-bytes N] [--max-keys N] [--ops-per-sec N] [--burst N] [--max-concurrent N] [--max-connections N] [--max-watches N] [--clear-labels] [--label K=V]... [--remove-label K]...",
	summary: "change a tenant's state, limits or labels",
	long: `Only what is given changes. --state is active, suspended (reads allowed,
writes refused; read-only is its old name) or locked (everything refused); a
change of state takes effect at once on every node. Trial and cancelled are
entered with 'tenant create --trial' and 'tenant cancel', and a cancelled
tenant is left with 'tenant restore'. A limit of 0 removes that limit (--max-connections and
--max-watches go back to the node's default). --label K=V sets one
label, and --label K= (an empty value) or --remove-label K removes one; the
tenant's other labels are kept (they are read and written back whole: a
concurrent change of labels may be lost). --clear-labels removes every label
first, so that the tenant has exactly the labels given with --label.
`,
	minArgs: 1, maxArgs: 1,
	setup: setupTenantSet,
}

func setupTenantSet(fs *flag.FlagSet, _ func(string) string) runFunc {
	var f tenantConfigFlags
	var state string
	var remove stringsFlag
	var clearLabels bool
	fs.StringVar(&state, "state", "", "new state `S`: active, suspended or locked")
	f.register(fs, "no limit")
	fs.Lookup("label").Usage = "set the label `KEY=VALUE`, or with an empty VALUE remove it; repeatable"
	fs.Var(&remove, "remove-label", "remove the label `KEY`; repeatable")
	fs.BoolVar(&clearLabels, "clear-labels", false, "remove every label (then add those of --label)")
	return func(ctx context.Context, x *cli, args []string) error {
		u := &client.TenantUpdate{State: state}
		for _, lf := range []struct {
			name string
			dst  **uint64
			v    uint64
		}{
			{"max-bytes", &u.MaxBytes, f.maxBytes}, {"max-keys", &u.MaxKeys, f.maxKeys},
			{"ops-per-sec", &u.OpsPerSec, f.opsPerSec}, {"burst", &u.Burst, f.burst},
			{"max-concurrent", &u.MaxConcurrent, f.maxConcurrent}, {"max-connections", &u.MaxConnections, f.maxConnections},
			{"max-watches", &u.MaxWatches, f.maxWatches},
		} {
			if x.set[lf.name] {
				*lf.dst = &lf.v
			}
		}
		if err := checkStateFlag(x, state, client.StateActive, client.StateSuspended, client.StateLocked, client.StateReadOnly); err != nil {
			return err
		}
		// --label K= removes K, like --remove-label K.
		set := map[string]string{}
		for k, v := range f.labels {
			if v == "" {
				remove = append(remove, k)
			} else {
				set[k] = v
			}
		}
		changeLabels := clearLabels || len(f.labels) > 0 || len(remove) > 0
		if state == "" && !changeLabels && !slices.ContainsFunc(limitFlagNames, func(n string) bool { return x.set[n] }) {
			return usagef(x.cmd, "nothing to change: give --state, a limit or a label")
		}
		for _, k := range remove {
			if _, ok := set[k]; ok {
				return usagef(x.cmd, "label %q is both set and removed", k)
			}
		}
		return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
			switch {
			case clearLabels:
				// Labels are replaced as a whole: exactly those given.
				u.Labels = set
			case changeLabels:
				// Merge with the current labels.
				cur, err := db.TenantInfo(ctx, args[0])
				if err != nil {
					return err
				}
				labels := maps.Clone(cur.Labels)
				if labels == nil {
					labels = map[string]string{}
				}
				maps.Copy(labels, set)
				for _, k := range remove {
					delete(labels, k)
				}
				u.Labels = labels
			}
			t, err := db.UpdateTenant(ctx, args[0], u)
			if err != nil {
				return err
			}
			fmt.Fprintf(x.stdout, "updated tenant %s: state %s, limits %s, labels %s\n",
				t.Name, t.State, formatLimits(t.Limits), formatLabels(t.Labels))
			return nil
		})
	}
}

// stringsFlag collects a repeated flag's values.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

func tenantRename(ctx context.Context, x *cli, args []string) error {
	return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		if err := db.RenameTenant(ctx, args[0], args[1]); err != nil {
			return err
		}
		fmt.Fprintf(x.stdout, "renamed tenant %s to %s\n", args[0], args[1])
		return nil
	})
}

func tenantDelete(ctx context.Context, x *cli, args []string) error {
	return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		if err := db.DeleteTenant(ctx, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(x.stdout, "deleted tenant %s\n", args[0])
		return nil
	})
}

var tenantTokenCommand = &command{
	path:    "tenant token",
	args:    "NAME [--read-only] [--ttl D]",
	summary: "print a new access token bound to the tenant",
	long: `Only the token is printed, so that TOKEN=$(tenantkv tenant token acme) works;
it is shown only this once. Its ID, which 'tenant tokens' lists and
'tenant revoke' takes, is the 16 hex digits after "tkv_". With --json the
token and its ID are printed as an object.
`,
	minArgs: 1, maxArgs: 1,
	setup: setupTenantToken,
}

func setupTenantToken(fs *flag.FlagSet, _ func(string) string) runFunc {
	var opts client.TokenOptions
	fs.BoolVar(&opts.ReadOnly, "read-only", false, "the token may read but not write")
	fs.DurationVar(&opts.TTL, "ttl", 0, "the token expires after `D`, such as 1h or 30m (0: never)")
	return func(ctx context.Context, x *cli, args []string) error {
		if opts.TTL < 0 {
			return usagef(x.cmd, "--ttl: negative duration %v", opts.TTL)
		}
		if args[0] == "" {
			return usagef(x.cmd, "empty tenant name")
		}
		return x.newToken(ctx, args[0], &opts)
	}
}

// newToken prints a new token: only the secret, or with --json an object.
func (x *cli) newToken(ctx context.Context, tenant string, opts *client.TokenOptions) error {
	return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		secret, id, err := db.NewToken(ctx, tenant, opts)
		if err != nil {
			return err
		}
		if x.g.json {
			return writeJSON(x.stdout, newTokenJSON{Token: secret, ID: id, Tenant: tenant, ReadOnly: opts.ReadOnly})
		}
		fmt.Fprintln(x.stdout, secret)
		return nil
	})
}

// tenantTokens lists the tenant's tokens, never their secrets.
func tenantTokens(ctx context.Context, x *cli, args []string) error {
	return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		toks, err := db.ListTokens(ctx, args[0])
		if err != nil {
			return err
		}
		now := time.Now()
		if x.g.json {
			out := make([]tokenJSON, len(toks))
			for i := range toks {
				out[i] = newTokenInfoJSON(&toks[i], now)
			}
			return writeJSON(x.stdout, out)
		}
		tw := tabwriter.NewWriter(x.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tACCESS\tCREATED\tEXPIRES")
		for _, tk := range toks {
			access := "read-write"
			if tk.ReadOnly {
				access = "read-only"
			}
			expires := "never"
			if !tk.ExpiresAt.IsZero() {
				expires = formatTime(tk.ExpiresAt)
				if !now.Before(tk.ExpiresAt) {
					expires += " (expired)"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", tk.ID, access, formatTime(tk.CreatedAt), expires)
		}
		return tw.Flush()
	})
}

// revokeToken revokes a token given by its ID or by the token itself.
func revokeToken(ctx context.Context, x *cli, args []string) error {
	id := args[0]
	if strings.HasPrefix(id, "tkv_") {
		var err error
		if id, err = client.TokenID(id); err != nil {
			return usagef(x.cmd, "%q is neither a token ID nor a token", args[0])
		}
	}
	return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		if err := db.RevokeToken(ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(x.stdout, "revoked token %s\n", id)
		return nil
	})
}

var tokenCreateCommand = &command{
	path:    "token create",
	args:    "[--ttl D]",
	summary: "print a new operator token",
	long: `An operator token can do everything: manage tenants, tokens and the cluster,
and reach every tenant's keys. Only the token is printed (with --json, an
object with its ID too); it is shown only this once. Revoke it with
'tenantkv token revoke ID'.
`,
	maxArgs: 0,
	setup:   setupTokenCreate,
}

func setupTokenCreate(fs *flag.FlagSet, _ func(string) string) runFunc {
	var opts client.TokenOptions
	fs.DurationVar(&opts.TTL, "ttl", 0, "the token expires after `D`, such as 24h (0: never)")
	return func(ctx context.Context, x *cli, _ []string) error {
		if opts.TTL < 0 {
			return usagef(x.cmd, "--ttl: negative duration %v", opts.TTL)
		}
		return x.newToken(ctx, "", &opts)
	}
}

// tenantList prints one line per tenant, or with --json an array of tenant
// objects.
var tenantListCommand = &command{
	path:    "tenant list",
	args:    "[--state S]",
	summary: "list tenants",
	maxArgs: 0,
	setup:   setupTenantList,
}

func setupTenantList(fs *flag.FlagSet, _ func(string) string) runFunc {
	var state string
	fs.StringVar(&state, "state", "", "only tenants in state `S`: trial, active, suspended, cancelled or locked")
	return func(ctx context.Context, x *cli, _ []string) error {
		if err := checkStateFlag(x, state, client.StateTrial, client.StateActive, client.StateSuspended,
			client.StateCancelled, client.StateLocked, client.StateReadOnly); err != nil {
			return err
		}
		return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
			var ts []client.TenantInfo
			opts := &client.ListOptions{State: state}
			for {
				page, next, err := db.ListTenantsPage(ctx, opts)
				if err != nil {
					return err
				}
				ts = append(ts, page...)
				if next == "" {
					break
				}
				opts.After = next
			}
			if x.g.json {
				out := make([]tenantJSON, len(ts))
				for i := range ts {
					out[i] = newTenantJSON(&ts[i])
				}
				return writeJSON(x.stdout, out)
			}
			tw := tabwriter.NewWriter(x.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tID\tSTATE\tKEYS\tBYTES\tCREATED\tDEADLINE")
			for _, t := range ts {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\t%s\n", t.Name, t.ID, t.State,
					t.Usage.Keys, t.Usage.LogicalBytes, formatTime(t.CreatedAt), formatDeadline(&t))
			}
			return tw.Flush()
		})
	}
}

// tenantShow describes one tenant, or with --json prints its object. A
// tenant token may show its own tenant.
func tenantShow(ctx context.Context, x *cli, args []string) error {
	return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		t, err := db.TenantInfo(ctx, args[0])
		if err != nil {
			return err
		}
		if x.g.json {
			return writeJSON(x.stdout, newTenantJSON(t))
		}
		u := t.Usage
		tw := tabwriter.NewWriter(x.stdout, 0, 0, 1, ' ', 0)
		fmt.Fprintf(tw, "name:\t%s\n", t.Name)
		fmt.Fprintf(tw, "id:\t%d\n", t.ID)
		fmt.Fprintf(tw, "state:\t%s\n", t.State)
		fmt.Fprintf(tw, "created:\t%s\n", formatTime(t.CreatedAt))
		if !t.TrialEnds.IsZero() {
			fmt.Fprintf(tw, "trial_ends:\t%s\n", formatTime(t.TrialEnds))
		}
		if !t.PurgeAt.IsZero() {
			fmt.Fprintf(tw, "purge_at:\t%s\n", formatTime(t.PurgeAt))
		}
		fmt.Fprintf(tw, "limits:\t%s\n", formatLimits(t.Limits))
		fmt.Fprintf(tw, "labels:\t%s\n", formatLabels(t.Labels))
		fmt.Fprintf(tw, "keys:\t%d\n", u.Keys)
		fmt.Fprintf(tw, "bytes:\t%d logical, %d on disk\n", u.LogicalBytes, u.DiskBytes)
		fmt.Fprintf(tw, "headroom:\t%s, %s\n",
			formatHeadroom(t.Limits.MaxKeys, u.Keys, "keys"), formatHeadroom(t.Limits.MaxBytes, u.LogicalBytes, "bytes"))
		fmt.Fprintf(tw, "requests:\t%d reads, %d writes, %d throttled, %d errors\n", u.Reads, u.Writes, u.Throttled, u.Errors)
		fmt.Fprintf(tw, "traffic:\t%d bytes read, %d bytes written\n", u.BytesRead, u.BytesWritten)
		return tw.Flush()
	})
}

// headroom is limit − used, nil when there is no limit. It is negative
// when a limit was lowered below what the tenant already stores.
func headroom(limit, used uint64) *int64 {
	if limit == 0 {
		return nil
	}
	h := int64(limit) - int64(used)
	return &h
}

// formatHeadroom renders what is left under a limit: "7 keys",
// "unlimited keys", or "0 keys (2 over the limit)".
func formatHeadroom(limit, used uint64, unit string) string {
	h := headroom(limit, used)
	switch {
	case h == nil:
		return "unlimited " + unit
	case *h < 0:
		return fmt.Sprintf("0 %s (%d over the limit)", unit, -*h)
	}
	return fmt.Sprintf("%d %s", *h, unit)
}

// formatDeadline is a tenant's pending deadline for `tenant list`:
// "trial_ends T", "purge_at T" or "-".
func formatDeadline(t *client.TenantInfo) string {
	switch {
	case !t.TrialEnds.IsZero():
		return "trial_ends " + formatTime(t.TrialEnds)
	case !t.PurgeAt.IsZero():
		return "purge_at " + formatTime(t.PurgeAt)
	}
	return "-"
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func formatLabels(labels map[string]string) string {
	if len(labels) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, " ")
}
