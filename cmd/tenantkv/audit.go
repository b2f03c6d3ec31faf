package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/tenantkv/tenantkv/client"
)

var tenantAuditCommand = &command{
	path:    "tenant audit",
	args:    "NAME [--since TIME] [--limit N] [--json] | NAME --verify",
	summary: "print a tenant's audit trail, or check its hash chain",
	long: `Every change to a tenant is an event of its audit trail, oldest first: the
time, the actor (an operator token's ID, the tenant token's ID, or "system"
for the cluster's own changes such as a trial's end), the kind and the before
and after. --since takes an RFC 3339 time (2026-12-01T00:00:00Z) or a
duration back from now (24h). A tenant token may read its own tenant's trail.

--verify checks the hash chain on the node that answers: every kept event is
there, in order, and names the SHA-256 of its predecessor. It prints the
extent checked and exits 0, or exits 1 naming the first bad event. Events
older than the cluster's --audit-retention are dropped; the chain then starts
at the first kept event.
`,
	minArgs: 1, maxArgs: 1,
	setup: setupTenantAudit,
}

func setupTenantAudit(fs *flag.FlagSet, _ func(string) string) runFunc {
	var since string
	var limit int
	var verify bool
	fs.StringVar(&since, "since", "", "only events at or after `TIME` (RFC 3339, or a duration back from now such as 24h)")
	fs.IntVar(&limit, "limit", 0, "print at most `N` events (0: all)")
	fs.BoolVar(&verify, "verify", false, "check the trail's hash chain: exit 1 naming the first bad event")
	return func(ctx context.Context, x *cli, args []string) error {
		if limit < 0 {
			return usagef(x.cmd, "--limit: negative")
		}
		if verify && (since != "" || limit != 0) {
			return usagef(x.cmd, "--verify checks the whole trail: no --since or --limit")
		}
		var opts client.AuditOptions
		opts.Limit = limit
		if since != "" {
			t, err := parseSince(since, time.Now())
			if err != nil {
				return usagef(x.cmd, "--since: %v", err)
			}
			opts.Since = t
		}
		name := args[0]
		return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
			if verify {
				return x.verifyAudit(ctx, db, name)
			}
			evs, err := db.TenantAudit(ctx, name, &opts)
			if err != nil {
				return err
			}
			if x.g.json {
				out := make([]auditEventJSON, len(evs))
				for i := range evs {
					out[i] = newAuditEventJSON(&evs[i])
				}
				return writeJSON(x.stdout, out)
			}
			tw := tabwriter.NewWriter(x.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tKIND\tBEFORE\tAFTER")
			for _, e := range evs {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.At.UTC().Format(time.RFC3339Nano), e.Actor, e.Kind, dash(e.Before), dash(e.After))
			}
			return tw.Flush()
		})
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// parseSince reads --since: an RFC 3339 time or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration such as 24h", s)
}

// errAuditBroken is the error of a trail that does not verify.
var errAuditBroken = errors.New("audit trail does not verify")

func (x *cli) verifyAudit(ctx context.Context, db *client.DB, name string) error {
	v, err := db.VerifyTenantAudit(ctx, name)
	if err != nil {
		return err
	}
	if x.g.json {
		if err := writeJSON(x.stdout, auditVerdictJSON{OK: v.OK, Events: v.Events, First: v.First, Last: v.Last, BadSeq: v.BadSeq, Reason: v.Reason}); err != nil {
			return err
		}
	} else if v.OK {
		if v.Events == 0 {
			fmt.Fprintf(x.stdout, "audit trail of %s: no events kept; the chain is whole\n", name)
		} else {
			fmt.Fprintf(x.stdout, "audit trail of %s: %d events (%d to %d) verified\n", name, v.Events, v.First, v.Last)
		}
	}
	if !v.OK {
		return fmt.Errorf("%w: tenant %s, first bad event %d: %s", errAuditBroken, name, v.BadSeq, v.Reason)
	}
	return nil
}

// auditEventJSON is one event of `tenant audit --json`.
type auditEventJSON struct {
	Seq    uint64    `json:"seq"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Kind   string    `json:"kind"`
	Before string    `json:"before"`
	After  string    `json:"after"`
	Prev   string    `json:"prev"`
	Hash   string    `json:"hash"`
}

func newAuditEventJSON(e *client.AuditEvent) auditEventJSON {
	return auditEventJSON{Seq: e.Seq, At: e.At.UTC(), Actor: e.Actor, Kind: e.Kind, Before: e.Before, After: e.After,
		Prev: hex.EncodeToString(e.Prev), Hash: hex.EncodeToString(e.Hash)}
}

// auditVerdictJSON is `tenant audit --verify --json`.
type auditVerdictJSON struct {
	OK     bool   `json:"ok"`
	Events uint64 `json:"events"`
	First  uint64 `json:"first"`
	Last   uint64 `json:"last"`
	BadSeq uint64 `json:"bad_seq,omitempty"`
	Reason string `json:"reason,omitempty"`
}
