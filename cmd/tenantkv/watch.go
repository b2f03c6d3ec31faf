package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"

	"github.com/tenantkv/tenantkv/client"
)

// watchCommand streams the changes of a key or range until interrupted.
var watchCommand = &command{
	path:    "watch",
	args:    "KEY | --prefix P | --start S --end E [--from VERSION]",
	summary: "print changes to a key or range as they happen",
	long: `Prints every change to KEY (or to the keys of a prefix or range) as it is
committed, in version order, until interrupted, one line per change:

  VERSION<TAB>set<TAB>KEY<TAB>VALUE
  VERSION<TAB>delete<TAB>KEY
  VERSION<TAB>delete-range<TAB>START<TAB>END

With --json each change is one JSON object per line. Without --from the
watch starts at the tenant's current version (changes from now on); with
--from V it prints every change after version V, or fails with "watch
version too old" when the tenant's write history (about 10 seconds) no
longer reaches back that far. The watch survives leader changes and
reconnects without losing or repeating a change. --timeout applies only
when given.
`,
	maxArgs: 1,
	setup:   setupWatch,
}

type watchEventJSON struct {
	Version uint64 `json:"version"`
	Kind    string `json:"kind"`
	kvJSON
	End       *string `json:"end,omitempty"`
	EndBase64 *string `json:"end_base64,omitempty"`
}

func setupWatch(fs *flag.FlagSet, _ func(string) string) runFunc {
	var prefix, start, end, from string
	fs.StringVar(&prefix, "prefix", "", "watch every key that starts with `P`")
	fs.StringVar(&start, "start", "", "first key of the watched range, inclusive")
	fs.StringVar(&end, "end", "", "end of the watched range, exclusive (default: the tenant's end)")
	fs.StringVar(&from, "from", "", "print the changes after tenant version `V` (default: from now)")
	return func(ctx context.Context, x *cli, args []string) error {
		var opts client.WatchOptions
		ranged := x.set["prefix"] || x.set["start"] || x.set["end"]
		switch {
		case len(args) == 1 && ranged:
			return usagef(x.cmd, "give a KEY or a range (--prefix, --start/--end), not both")
		case len(args) == 1:
			opts.Key = []byte(args[0])
		case x.set["prefix"] && (x.set["start"] || x.set["end"]):
			return usagef(x.cmd, "--prefix cannot be combined with --start or --end")
		case x.set["prefix"]:
			opts.Range = client.Prefix([]byte(prefix))
		case ranged:
			opts.Range = client.KeyRange{Begin: []byte(start), End: []byte(end)}
		default:
			return usagef(x.cmd, "nothing to watch: give a KEY, --prefix or --start/--end")
		}
		if x.set["from"] {
			v, err := strconv.ParseUint(from, 10, 64)
			if err != nil {
				return usagef(x.cmd, "--from: %q is not a version", from)
			}
			opts.FromVersion = v
		}
		if !x.set["timeout"] {
			x.g.timeout = 0 // a watch runs until interrupted
		}
		err := x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
			t, err := x.tenantOf(db)
			if err != nil {
				return err
			}
			if !x.set["from"] {
				if opts.FromVersion, err = t.ReadVersion(ctx); err != nil {
					return err
				}
			}
			return printWatch(x, t.Watch(ctx, opts))
		})
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return nil // interrupted: the normal end of a watch
		}
		return err
	}
}

func printWatch(x *cli, seq func(func(client.WatchEvent, error) bool)) error {
	w := bufio.NewWriter(x.stdout)
	defer w.Flush()
	for ev, err := range seq {
		if err != nil {
			return err
		}
		if x.g.json {
			j := watchEventJSON{Version: ev.Version, Kind: ev.Kind.String()}
			j.Key, j.KeyBase64 = bytesJSON(ev.Key)
			switch ev.Kind {
			case client.WatchSet:
				j.Value, j.ValueBase64 = bytesJSON(ev.Value)
			case client.WatchDeleteRange:
				j.End, j.EndBase64 = bytesJSON(ev.End)
			}
			b, err := marshalCompact(j)
			if err != nil {
				return err
			}
			w.Write(b)
		} else {
			fmt.Fprintf(w, "%d\t%s\t", ev.Version, ev.Kind)
			w.Write(ev.Key)
			switch ev.Kind {
			case client.WatchSet:
				w.WriteByte('\t')
				w.Write(ev.Value)
			case client.WatchDeleteRange:
				w.WriteByte('\t')
				w.Write(ev.End)
			}
		}
		w.WriteByte('\n')
		// Each change is shown as it comes.
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return nil
}
