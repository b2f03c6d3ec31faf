package main

import (
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Mistakes in a command line are answered with what was probably meant:
// "unknown command "tenant craete" (did you mean "tenant create"?)". Flags
// are spelt with two dashes in every message, as the help spells them,
// although the flag package's own errors use one.

// flagError rewrites an error of fs.Parse: an unknown flag gets the
// nearest names of fs, and every flag name gets two dashes. Errors it does
// not recognise are returned as they are.
func flagError(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		if alts := nearest(name, names); len(alts) > 0 {
			return fmt.Errorf("unknown flag --%s (did you mean %s?)", name, orList(prefixAll("--", alts)))
		}
		return fmt.Errorf("unknown flag --%s", name)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Errorf("flag --%s needs a value", name)
	}
	// invalid value "x" for flag -name: cause
	// invalid boolean value "x" for -name: cause
	for _, intro := range []string{" for flag -", " for -"} {
		head, rest, ok := strings.Cut(msg, intro)
		if !ok || !strings.HasPrefix(head, "invalid ") {
			continue
		}
		name, cause, _ := strings.Cut(rest, ": ")
		value := strings.TrimPrefix(strings.TrimPrefix(head, "invalid boolean value "), "invalid value ")
		if f := fs.Lookup(name); f != nil && (cause == "parse error" || cause == "value out of range") {
			cause = "not " + kindOf(f)
		}
		return fmt.Errorf("--%s: %s is %s", name, value, cause)
	}
	return err
}

// leadingFlagError reports the first flag before the command words of args
// that is not a global flag, or nil.
func leadingFlagError(args []string, env func(string) string) error {
	fs := newFlagSet("tenantkv")
	var g globalFlags
	g.register(fs, env)
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || len(a) < 2 || a[0] != '-' {
			return nil // the first command word
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if fs.Lookup(name) == nil && name != "h" && name != "help" && name != "version" {
			return usagef(nil, "%v", flagError(fs, fmt.Errorf("flag provided but not defined: -%s", name)))
		}
		if valueGlobals[name] && !hasValue {
			i++ // its value
		}
	}
	return nil
}

// kindOf names what a flag's value must be, for an error that says only
// "parse error".
func kindOf(f *flag.Flag) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return "a valid value"
	}
	switch g.Get().(type) {
	case time.Duration:
		return "a duration such as 500ms, 10s or 2m"
	case bool:
		return "true or false"
	case uint, uint64:
		return "a count (0 or more)"
	case int, int64:
		return "a whole number"
	}
	return "a valid value"
}

// unknownCommand is the usage error for command words that name no
// command, with the nearest commands.
func unknownCommand(words []string) error {
	path := strings.Join(words, " ")
	var paths []string
	for _, c := range commands {
		paths = append(paths, c.path)
	}
	paths = append(paths, "bench")
	if len(words) == 1 {
		paths = append(paths, groups...) // "tenat create": "tenant"
	}
	if len(words) == 2 && isGroup(words[0]) {
		// The group is right: only its subcommands can be meant.
		paths = slices.DeleteFunc(paths, func(p string) bool { return !strings.HasPrefix(p, words[0]+" ") })
	}
	if alts := nearest(path, paths); len(alts) > 0 {
		return usagef(nil, "unknown command %q (did you mean %s?)", path, orList(quoteAll(alts)))
	}
	if len(words) == 1 {
		// A word that starts a group's command: "status" for "cluster status".
		var inGroups []string
		for _, p := range paths {
			if _, sub, ok := strings.Cut(p, " "); ok && sub == words[0] {
				inGroups = append(inGroups, p)
			}
		}
		if len(inGroups) > 0 {
			return usagef(nil, "unknown command %q (did you mean %s?)", path, orList(quoteAll(inGroups)))
		}
	}
	return usagef(nil, "unknown command %q", path)
}

// nearest returns the candidates closest to s in edit distance, when they
// are close enough to be a slip (at most 2 edits, fewer than half the
// length of s), or that s is a prefix of; at most 3, in candidates' order.
func nearest(s string, candidates []string) []string {
	best, out := -1, []string(nil)
	limit := min(2, (len(s)-1)/2)
	for _, c := range candidates {
		d := editDistance(s, c)
		if d > limit && !(len(s) >= 3 && strings.HasPrefix(c, s)) {
			continue
		}
		if strings.HasPrefix(c, s) {
			d = 0 // an abbreviation is as good as a slip of one key
		}
		switch {
		case best < 0 || d < best:
			best, out = d, []string{c}
		case d == best:
			out = append(out, c)
		}
	}
	if len(out) > 3 {
		out = out[:3]
	}
	return out
}

// editDistance is the Damerau–Levenshtein distance (optimal string
// alignment): insertions, deletions, substitutions and transpositions of
// adjacent bytes each cost 1. Command lines are short, so the quadratic
// table is small.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		// Nothing that long is a slip of a name.
		return max(len(a), len(b))
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

func prefixAll(p string, ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = p + s
	}
	return out
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// orList joins "a", "a or b", "a, b or c".
func orList(ss []string) string {
	if len(ss) <= 1 {
		return strings.Join(ss, "")
	}
	return strings.Join(ss[:len(ss)-1], ", ") + " or " + ss[len(ss)-1]
}
