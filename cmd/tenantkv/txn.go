package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/tenantkv/tenantkv/client"
)

// txnCommand runs the operations read from stdin in one serializable
// transaction (client.Tenant.Update), retried on conflicts, and prints the
// results of its reads once it has committed.
var txnCommand = &command{
	path:    "txn",
	summary: "run operations read from stdin in one transaction",
	long: `Reads one operation per line from stdin and runs them all in one strictly
serializable transaction, retried on conflicts; nothing is written unless
everything commits. Blank lines and lines starting with # are ignored.
Arguments are separated by spaces; one in double quotes is a Go string
literal, so "a b" and "\x00\xff" work.

  get KEY              print KEY<TAB>VALUE, or KEY alone if it is missing
  getint KEY           the same, the value read as a little-endian int64
  scan START END [N]   print the pairs in [START, END), at most N ("" = open)
  set KEY VALUE        set a key
  del KEY              delete a key
  delrange START END   delete every key in [START, END)
  add KEY N            atomically add the integer N (little-endian int64)
  min KEY N, max KEY N atomic minimum and maximum (little-endian int64)
  clear-if KEY VALUE   atomically delete KEY if its value is VALUE
  cas KEY OLD NEW      set KEY to NEW if its value is OLD; prints
                       KEY<TAB>swapped or KEY<TAB>not swapped

Reads see the transaction's own writes. The commit version is printed on
stderr; with --json the output is one document {"results": [...],
"version": N}.
`,
	maxArgs: 0,
	setup:   func(*flag.FlagSet, func(string) string) runFunc { return runTxn },
}

// txnOp is one line of a txn script.
type txnOp struct {
	line int
	verb string
	args [][]byte
}

// txnArity is the number of arguments each verb takes (scan: 2 or 3).
var txnArity = map[string]int{
	"get": 1, "getint": 1, "scan": 2, "set": 2, "del": 1, "delrange": 2,
	"add": 2, "min": 2, "max": 2, "clear-if": 2, "cas": 3,
}

// parseTxn reads a txn script.
func parseTxn(r io.Reader) ([]txnOp, error) {
	var ops []txnOp
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4*client.MaxValueSize)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		words, err := splitWords(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		op := txnOp{line: n, verb: strings.ToLower(string(words[0])), args: words[1:]}
		want, ok := txnArity[op.verb]
		if !ok {
			return nil, fmt.Errorf("line %d: unknown operation %q", n, op.verb)
		}
		if len(op.args) != want && !(op.verb == "scan" && len(op.args) == 3) {
			return nil, fmt.Errorf("line %d: %s takes %d arguments, got %d", n, op.verb, want, len(op.args))
		}
		switch op.verb {
		case "add", "min", "max":
			if _, err := strconv.ParseInt(string(op.args[1]), 10, 64); err != nil {
				return nil, fmt.Errorf("line %d: %s: %q is not an integer", n, op.verb, op.args[1])
			}
		case "scan":
			if len(op.args) == 3 {
				if l, err := strconv.Atoi(string(op.args[2])); err != nil || l < 0 {
					return nil, fmt.Errorf("line %d: scan: bad limit %q", n, op.args[2])
				}
			}
		}
		ops = append(ops, op)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read stdin: %w", err)
	}
	return ops, nil
}

// splitWords splits a line at spaces; a word in double quotes is a Go
// string literal.
func splitWords(line string) ([][]byte, error) {
	var out [][]byte
	for line = strings.TrimLeftFunc(line, unicode.IsSpace); line != ""; line = strings.TrimLeftFunc(line, unicode.IsSpace) {
		if line[0] == '"' {
			q, err := strconv.QuotedPrefix(line)
			if err != nil {
				return nil, fmt.Errorf("bad quoted string: %s", line)
			}
			s, _ := strconv.Unquote(q)
			out = append(out, []byte(s))
			line = line[len(q):]
			continue
		}
		end := strings.IndexFunc(line, unicode.IsSpace)
		if end < 0 {
			end = len(line)
		}
		out = append(out, []byte(line[:end]))
		line = line[end:]
	}
	return out, nil
}

// txnResult is what one read of the script returned.
type txnResult struct {
	op      string
	key     []byte
	value   []byte
	found   bool
	integer bool
	swapped *bool
}

type txnResultJSON struct {
	Op string `json:"op"`
	kvJSON
	Found   bool   `json:"found"`
	Int     *int64 `json:"int,omitempty"`
	Swapped *bool  `json:"swapped,omitempty"`
}

// execTxn runs ops in tx and returns the results of the reads.
func execTxn(ctx context.Context, tx *client.Tx, ops []txnOp) ([]txnResult, error) {
	var out []txnResult
	for _, op := range ops {
		a := op.args
		var err error
		switch op.verb {
		case "get", "getint":
			var v []byte
			v, err = tx.Get(ctx, a[0])
			if errors.Is(err, client.ErrNotFound) {
				out = append(out, txnResult{op: op.verb, key: a[0]})
				err = nil
				break
			}
			out = append(out, txnResult{op: op.verb, key: a[0], value: v, found: err == nil, integer: op.verb == "getint"})
		case "scan":
			opts := &client.RangeOptions{}
			if len(a) == 3 {
				opts.Limit, _ = strconv.Atoi(string(a[2]))
			}
			for kv, e := range tx.Range(ctx, client.KeyRange{Begin: a[0], End: a[1]}, opts) {
				if e != nil {
					err = e
					break
				}
				out = append(out, txnResult{op: "scan", key: kv.Key, value: kv.Value, found: true})
			}
		case "set":
			tx.Set(a[0], a[1])
		case "del":
			tx.Delete(a[0])
		case "delrange":
			tx.DeleteRange(client.KeyRange{Begin: a[0], End: a[1]})
		case "add", "min", "max":
			n, _ := strconv.ParseInt(string(a[1]), 10, 64)
			map[string]func([]byte, int64){"add": tx.Add, "min": tx.Min, "max": tx.Max}[op.verb](a[0], n)
		case "clear-if":
			tx.CompareAndClear(a[0], a[1])
		case "cas":
			var v []byte
			v, err = tx.Get(ctx, a[0])
			swapped := err == nil && bytes.Equal(v, a[1])
			if err == nil || errors.Is(err, client.ErrNotFound) {
				err = nil
				if swapped {
					tx.Set(a[0], a[2])
				}
				out = append(out, txnResult{op: "cas", key: a[0], swapped: &swapped})
			}
		}
		if err != nil {
			return nil, fmt.Errorf("line %d (%s): %w", op.line, op.verb, err)
		}
	}
	return out, nil
}

func runTxn(ctx context.Context, x *cli, _ []string) error {
	ops, err := parseTxn(x.stdin)
	if err != nil {
		return usagef(x.cmd, "%v", err)
	}
	return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		t, err := x.tenantOf(db)
		if err != nil {
			return err
		}
		// Update may run the function more than once: only the results of
		// the attempt that committed are printed.
		var results []txnResult
		var last *client.Tx
		err = t.Update(ctx, func(tx *client.Tx) error {
			last = tx
			var err error
			results, err = execTxn(ctx, tx, ops)
			return err
		})
		if err != nil {
			return err
		}
		return printTxn(x, results, last.CommittedVersion())
	})
}

func printTxn(x *cli, results []txnResult, version uint64) error {
	w := bufio.NewWriter(x.stdout)
	if x.g.json {
		doc := struct {
			Results []txnResultJSON `json:"results"`
			Version uint64          `json:"version"`
		}{Results: []txnResultJSON{}, Version: version}
		for _, r := range results {
			j := txnResultJSON{Op: r.op, Found: r.found, Swapped: r.swapped}
			j.kvJSON.Key, j.kvJSON.KeyBase64 = bytesJSON(r.key)
			if r.found {
				if r.integer {
					n := int64(binary.LittleEndian.Uint64(append(r.value, make([]byte, 8)...)))
					j.Int = &n
				}
				j.kvJSON.Value, j.kvJSON.ValueBase64 = bytesJSON(r.value)
			}
			doc.Results = append(doc.Results, j)
		}
		if err := writeJSON(w, doc); err != nil {
			return err
		}
		return w.Flush()
	}
	for _, r := range results {
		w.Write(r.key)
		switch {
		case r.swapped != nil && *r.swapped:
			w.WriteString("\tswapped")
		case r.swapped != nil:
			w.WriteString("\tnot swapped")
		case r.found && r.integer:
			fmt.Fprintf(w, "\t%d", int64(binary.LittleEndian.Uint64(append(r.value, make([]byte, 8)...))))
		case r.found:
			w.WriteByte('\t')
			w.Write(r.value)
		}
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if version > 0 {
		fmt.Fprintf(x.stderr, "tenantkv: committed at version %d\n", version)
	}
	return nil
}
