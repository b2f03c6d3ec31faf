package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// completionCommand prints a shell completion script. The scripts are made
// from the command table, so that every command and flag completes without
// the scripts being edited by hand.
var completionCommand = &command{
	path:    "completion",
	args:    "bash|zsh",
	summary: "print a shell completion script for bash or zsh",
	long: `Completes commands, subcommands, flags and the values of flags that take
one of a few words (--state, --log-level, --log-format, --raft-log); files
after flags that take a file or a directory.

  bash: source <(tenantkv completion bash)
        or save it as /etc/bash_completion.d/tenantkv
  zsh:  tenantkv completion zsh > "${fpath[1]}/_tenantkv"   (then a new shell)
        or, after compinit: source <(tenantkv completion zsh)
`,
	minArgs: 1, maxArgs: 1,
}

// The script is made from the command table, which lists this command:
// its setup is set here, not in its literal, to break the cycle.
func init() { completionCommand.setup = noFlags(printCompletion) }

// flagWords are the values of the flags that take one of a few words.
var flagWords = map[string][]string{
	"state":      {"trial", "active", "suspended", "cancelled", "locked", "read-only"},
	"log-level":  {"debug", "info", "warn", "error"},
	"log-format": {"text", "json"},
	"raft-log":   {"pebble", "bolt"},
}

func printCompletion(_ context.Context, x *cli, args []string) error {
	spec := completionSpec()
	switch args[0] {
	case "bash":
		writeBashCompletion(x.stdout, spec)
	case "zsh":
		writeZshCompletion(x.stdout, spec)
	default:
		return usagef(x.cmd, "completion: %q is not bash or zsh", args[0])
	}
	return nil
}

// compSpec is what the scripts know of the command line.
type compSpec struct {
	top        []string            // first words
	subs       map[string][]string // a group's second words
	flags      map[string][]string // a command's flags, "--name", by path
	paths      []string            // command paths, in the table's order
	valueFlags []string            // flags that take a value, "--name"
	fileFlags  []string            // flags whose value is a file or directory
}

// completionSpec reads the command table and every command's flag set.
// bench parses flags of its own (its --json takes a file): it completes as
// a word only.
func completionSpec() compSpec {
	s := compSpec{subs: map[string][]string{}, flags: map[string][]string{}}
	for _, c := range commands {
		first, sub, ok := strings.Cut(c.path, " ")
		if !slices.Contains(s.top, first) {
			s.top = append(s.top, first)
		}
		if ok {
			s.subs[first] = append(s.subs[first], sub)
		}
		s.paths = append(s.paths, c.path)
		fs := commandFlags(c)
		fs.VisitAll(func(f *flag.Flag) {
			name := "--" + f.Name
			s.flags[c.path] = append(s.flags[c.path], name)
			if isBoolFlag(f) {
				return
			}
			if !slices.Contains(s.valueFlags, name) {
				s.valueFlags = append(s.valueFlags, name)
			}
			if placeholder, _ := flag.UnquoteUsage(f); (placeholder == "FILE" || placeholder == "DIR") && !slices.Contains(s.fileFlags, name) {
				s.fileFlags = append(s.fileFlags, name)
			}
		})
	}
	s.top = append(s.top, "bench")
	return s
}

// commandFlags returns c's flag set with the global flags, as parse builds
// it, with no environment.
func commandFlags(c *command) *flag.FlagSet {
	fs := newFlagSet("tenantkv " + c.path)
	var g globalFlags
	none := func(string) string { return "" }
	g.register(fs, none)
	if c.setup != nil {
		c.setup(fs, none)
	}
	return fs
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// The two scripts share their logic, written once below for both shells:
// walk the words before the cursor, skipping flags and the values of
// those that take one, to find the command path; then offer what may come
// at the cursor. Word lists are filled in by writeCompletionTables.

func writeBashCompletion(w io.Writer, s compSpec) {
	fmt.Fprint(w, `# bash completion for tenantkv, printed by `+"`tenantkv completion bash`"+`.
#   source <(tenantkv completion bash)
# or save it as /etc/bash_completion.d/tenantkv.

_tenantkv() {
	# The words before the cursor, split on blanks only: bash's own split
	# also breaks at = and :, which addresses and --flag=value contain.
	local line=${COMP_LINE:0:COMP_POINT}
	local -a ws
	read -ra ws <<<"$line"
	local cur=
	if [[ $line != *[[:space:]] && ${#ws[@]} -gt 1 ]]; then
		cur=${ws[${#ws[@]}-1]}
		unset 'ws[${#ws[@]}-1]'
	fi
	local cmdpath= prev= w i n=${#ws[@]}
	for (( i = 1; i < n; i++ )); do
		w=${ws[i]}
		prev=$w
`)
	writeWalk(w, "\t\t")
	fmt.Fprint(w, `	done
	local list
	list=$(_tenantkv_candidates "$cmdpath" "$prev" "$cur") || return 0
	if [[ $cur == *=* ]]; then
		return 0 # a --flag=value: bash's word is the value alone
	fi
	COMPREPLY=($(compgen -W "$list" -- "$cur"))
}

`)
	writeCandidates(w, s)
	fmt.Fprint(w, "\ncomplete -o default -F _tenantkv tenantkv\n")
}

func writeZshCompletion(w io.Writer, s compSpec) {
	fmt.Fprint(w, `#compdef tenantkv
# zsh completion for tenantkv, printed by `+"`tenantkv completion zsh`"+`.
# Save it as _tenantkv in a directory of $fpath (then start a new shell),
# or, after compinit: source <(tenantkv completion zsh)

_tenantkv() {
	# Not "path": zsh ties that name to $PATH.
	local cur=${words[CURRENT]} cmdpath= prev= w i n=$CURRENT
	for (( i = 2; i < n; i++ )); do
		w=${words[i]}
		prev=$w
`)
	writeWalk(w, "\t\t")
	fmt.Fprint(w, `	done
	local list
	list=$(_tenantkv_candidates "$cmdpath" "$prev" "$cur")
	if (( $? != 0 )); then
		_files
		return
	fi
	local -a items
	items=(${=list})
	compadd -- $items
}

`)
	writeCandidates(w, s)
	fmt.Fprint(w, `
if [[ ${funcstack[1]-} == _tenantkv ]]; then
	_tenantkv "$@" # autoloaded from $fpath
else
	compdef _tenantkv tenantkv
fi
`)
}

// writeWalk writes the body of the loop over the words before the cursor
// (index i of n), which sets cmdpath (the command words so far) and prev
// (the flag whose value is at the cursor, else "").
func writeWalk(w io.Writer, indent string) {
	body := `case $w in
--)
	break ;;
-*=*)
	prev= ;;
-*)
	if _tenantkv_takes_value "$w"; then
		# Its value is the next word, unless that is the cursor's.
		(( i + 1 < n )) && prev=
		(( i += 1 ))
	fi ;;
*)
	prev=
	if [[ -z $cmdpath ]]; then
		cmdpath=$w
	elif _tenantkv_is_group "$cmdpath"; then
		cmdpath="$cmdpath $w"
	fi ;;
esac
`
	for _, l := range strings.SplitAfter(body, "\n") {
		if l != "" {
			fmt.Fprint(w, indent+l)
		}
	}
}

// writeCandidates writes the helper functions, the same in both shells:
// _tenantkv_candidates prints the words that may come at the cursor, or
// fails when a file or directory is wanted there.
func writeCandidates(w io.Writer, s compSpec) {
	fmt.Fprintf(w, "_tenantkv_takes_value() {\n\tcase $1 in\n\t%s) return 0 ;;\n\tesac\n\treturn 1\n}\n\n", strings.Join(s.valueFlags, "|"))
	fmt.Fprintf(w, "_tenantkv_is_group() {\n\tcase $1 in\n\t%s) return 0 ;;\n\tesac\n\treturn 1\n}\n\n", strings.Join(groups, "|"))
	fmt.Fprint(w, "_tenantkv_candidates() {\n\tlocal cmdpath=$1 prev=$2 cur=$3\n")
	// The value of a flag.
	fmt.Fprint(w, "\tcase $prev in\n")
	for _, name := range sortedKeys(flagWords) {
		fmt.Fprintf(w, "\t--%s) echo %s; return 0 ;;\n", name, strings.Join(flagWords[name], " "))
	}
	if len(s.fileFlags) > 0 {
		fmt.Fprintf(w, "\t%s) return 1 ;;\n", strings.Join(s.fileFlags, "|"))
	}
	fmt.Fprint(w, "\tesac\n")
	fmt.Fprint(w, "\tif [[ -n $prev ]] && _tenantkv_takes_value \"$prev\"; then\n\t\treturn 0 # a value nothing can guess\n\tfi\n")
	// A flag of the command.
	fmt.Fprint(w, "\tif [[ $cur == -* ]]; then\n\t\tcase $cmdpath in\n")
	fmt.Fprintf(w, "\t\t\"\") echo %s --version --help ;;\n", strings.Join(s.flags["help"], " "))
	for _, p := range s.paths {
		fmt.Fprintf(w, "\t\t%q) echo %s ;;\n", p, strings.Join(s.flags[p], " "))
	}
	fmt.Fprintf(w, "\t\t*) echo %s ;;\n\t\tesac\n\t\treturn 0\n\tfi\n", strings.Join(s.flags["help"], " "))
	// A command word or an argument.
	fmt.Fprint(w, "\tcase $cmdpath in\n")
	fmt.Fprintf(w, "\t\"\") echo %s ;;\n", strings.Join(s.top, " "))
	for _, g := range groups {
		fmt.Fprintf(w, "\t%s) echo %s ;;\n", g, strings.Join(s.subs[g], " "))
	}
	fmt.Fprintf(w, "\thelp) echo %s ;;\n", strings.Join(s.top, " "))
	fmt.Fprint(w, "\tcompletion) echo bash zsh ;;\n")
	fmt.Fprint(w, "\t*) return 1 ;;\n\tesac\n}\n")
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
