package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/tenantkv/tenantkv/client"
)

// tenantOf returns the handle the data commands work on: --tenant, or the
// tenant a tenant token is bound to.
func (x *cli) tenantOf(db *client.DB) (*client.Tenant, error) {
	if x.g.tenant != "" {
		return db.Tenant(x.g.tenant), nil
	}
	if name, _ := db.Identity(); name != "" {
		return db.Tenant(name), nil
	}
	return nil, usagef(x.cmd, "no tenant given: use --tenant NAME or %s (an operator token has no tenant of its own)", envTenant)
}

// dataGet prints the value of a key followed by a newline, or with --json
// {"key": …, "value": …}. A missing key is the error "tenantkv: not found".
func dataGet(ctx context.Context, x *cli, args []string) error {
	key := []byte(args[0])
	return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		t, err := x.tenantOf(db)
		if err != nil {
			return err
		}
		v, err := t.Get(ctx, key)
		if errors.Is(err, client.ErrNotFound) {
			return client.ErrNotFound // "tenantkv: not found", whatever the server said
		}
		if err != nil {
			return err
		}
		if x.g.json {
			return writeJSON(x.stdout, newKVJSON(key, v))
		}
		w := bufio.NewWriter(x.stdout)
		w.Write(v)
		w.WriteByte('\n')
		return w.Flush()
	})
}

// dataPut sets a key. The value "-" reads the value, byte for byte, from
// stdin (a trailing newline is kept).
func dataPut(ctx context.Context, x *cli, args []string) error {
	key, value := []byte(args[0]), []byte(args[1])
	if args[1] == "-" {
		b, err := io.ReadAll(io.LimitReader(x.stdin, client.MaxValueSize+1))
		if err != nil {
			return fmt.Errorf("read value from stdin: %w", err)
		}
		value = b
	}
	return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		t, err := x.tenantOf(db)
		if err != nil {
			return err
		}
		return t.Set(ctx, key, value)
	})
}

// dataDel deletes a key; deleting a missing key succeeds.
func dataDel(ctx context.Context, x *cli, args []string) error {
	key := []byte(args[0])
	return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		t, err := x.tenantOf(db)
		if err != nil {
			return err
		}
		return t.Delete(ctx, key)
	})
}

var scanCommand = &command{
	path:    "scan",
	args:    "[--prefix P | --start S --end E] [--limit N] [--reverse]",
	summary: `print pairs in key order, as "key<TAB>value" lines`,
	maxArgs: 0,
	setup:   setupScan,
}

func setupScan(fs *flag.FlagSet, _ func(string) string) runFunc {
	var (
		prefix, start, end string
		limit              int
		reverse            bool
	)
	fs.StringVar(&prefix, "prefix", "", "only keys that start with `P`")
	fs.StringVar(&start, "start", "", "first key, inclusive (default: the tenant's first key)")
	fs.StringVar(&end, "end", "", "last key, exclusive (default: after the tenant's last key)")
	fs.IntVar(&limit, "limit", 0, "print at most `N` pairs (0: all)")
	fs.BoolVar(&reverse, "reverse", false, "descending key order")
	return func(ctx context.Context, x *cli, _ []string) error {
		var r client.KeyRange
		switch {
		case x.set["prefix"] && (x.set["start"] || x.set["end"]):
			return usagef(x.cmd, "--prefix cannot be combined with --start or --end")
		case x.set["prefix"]:
			r = client.Prefix([]byte(prefix))
		default:
			r = client.KeyRange{Begin: []byte(start), End: []byte(end)}
		}
		if limit < 0 {
			return usagef(x.cmd, "--limit: negative value %d", limit)
		}
		return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
			t, err := x.tenantOf(db)
			if err != nil {
				return err
			}
			return x.printRange(t.Range(ctx, r, &client.RangeOptions{Limit: limit, Reverse: reverse}))
		})
	}
}

// printRange prints pairs as "key\tvalue" lines, or with --json as an
// array of {"key": …, "value": …} objects.
func (x *cli) printRange(seq func(yield func(client.KV, error) bool)) error {
	w := bufio.NewWriter(x.stdout)
	defer w.Flush()
	arr := &jsonArray{w: w}
	for kv, err := range seq {
		if err != nil {
			return err
		}
		if x.g.json {
			if err := arr.add(newKVJSON(kv.Key, kv.Value)); err != nil {
				return err
			}
			continue
		}
		w.Write(kv.Key)
		w.WriteByte('\t')
		w.Write(kv.Value)
		w.WriteByte('\n')
	}
	if x.g.json {
		if err := arr.close(); err != nil {
			return err
		}
	}
	return w.Flush()
}
