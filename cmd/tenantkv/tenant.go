package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tenantkv/tenantkv/client"
)

// The tenant commands need an operator token.

func tenantCreate(ctx context.Context, x *cli, args []string) error {
	return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		t, err := db.CreateTenant(ctx, args[0], nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(x.stdout, "created tenant %s (id %d)\n", t.Name, t.ID)
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

// tenantToken prints a new token bound to the tenant, and nothing else, so
// that TOKEN=$(tenantkv tenant token acme) works.
func tenantToken(ctx context.Context, x *cli, args []string) error {
	return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		tok, err := db.NewTenantToken(ctx, args[0])
		if err != nil {
			return err
		}
		fmt.Fprintln(x.stdout, tok)
		return nil
	})
}

// tenantList prints one line per tenant, or with --json an array of tenant
// objects.
func tenantList(ctx context.Context, x *cli, _ []string) error {
	return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		ts, err := db.ListTenants(ctx)
		if err != nil {
			return err
		}
		if x.g.json {
			out := make([]tenantJSON, len(ts))
			for i := range ts {
				out[i] = newTenantJSON(&ts[i])
			}
			return writeJSON(x.stdout, out)
		}
		tw := tabwriter.NewWriter(x.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tID\tSTATE\tKEYS\tBYTES\tCREATED")
		for _, t := range ts {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\n", t.Name, t.ID, t.State,
				t.Usage.Keys, t.Usage.LogicalBytes, formatTime(t.CreatedAt))
		}
		return tw.Flush()
	})
}

// tenantShow describes one tenant, or with --json prints its object.
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
		fmt.Fprintf(tw, "limits:\t%s\n", formatLimits(t.Limits))
		fmt.Fprintf(tw, "labels:\t%s\n", formatLabels(t.Labels))
		fmt.Fprintf(tw, "keys:\t%d\n", u.Keys)
		fmt.Fprintf(tw, "bytes:\t%d logical, %d on disk\n", u.LogicalBytes, u.DiskBytes)
		fmt.Fprintf(tw, "requests:\t%d reads, %d writes, %d throttled, %d errors\n", u.Reads, u.Writes, u.Throttled, u.Errors)
		fmt.Fprintf(tw, "traffic:\t%d bytes read, %d bytes written\n", u.BytesRead, u.BytesWritten)
		return tw.Flush()
	})
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
