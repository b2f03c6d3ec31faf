package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"github.com/tenantkv/tenantkv/client"
)

// version is set at link time: `make build` passes git's name of the
// commit (-ldflags "-X main.version=$(git describe --tags --always
// --dirty)"). When empty (go build, go install), the module version and
// VCS revision of the build are shown.
var version string

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, a second one kills the process at once.
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

// runFunc runs a command with its positional arguments.
type runFunc func(ctx context.Context, x *cli, args []string) error

// command is one leaf of the command tree, such as "get" or "tenant create".
type command struct {
	path    string // command words, such as "tenant create"
	args    string // synopsis of flags and arguments
	summary string
	long    string // more help, shown by `tenantkv help COMMAND`
	minArgs int
	maxArgs int // -1: no limit
	// setup registers the command's own flags on fs and returns the
	// function that runs it with them.
	setup func(fs *flag.FlagSet, env func(string) string) runFunc
}

// commands lists every command in the order `tenantkv help` shows them.
var commands = []*command{
	serveCommand,
	tenantCreateCommand,
	tenantListCommand,
	{path: "tenant show", args: "NAME", summary: "describe a tenant: state, limits, usage and headroom", minArgs: 1, maxArgs: 1, setup: noFlags(tenantShow)},
	tenantSetCommand,
	{path: "tenant rename", args: "OLD NEW", summary: "rename a tenant; its ID, keys and tokens stay", minArgs: 2, maxArgs: 2, setup: noFlags(tenantRename)},
	{path: "tenant delete", args: "NAME", summary: "delete a tenant and purge all its keys", minArgs: 1, maxArgs: 1, setup: noFlags(tenantDelete)},
	tenantActivateCommand, // lifecycle.go
	tenantSuspendCommand,
	tenantCancelCommand,
	tenantRestoreCommand,
	tenantAuditCommand, // audit.go
	tenantTokenCommand,
	{path: "tenant tokens", args: "NAME", summary: "list the tenant's tokens (IDs, never secrets)", minArgs: 1, maxArgs: 1, setup: noFlags(tenantTokens)},
	{path: "tenant revoke", args: "TOKEN-ID", summary: "revoke a token at once on every node", minArgs: 1, maxArgs: 1, setup: noFlags(revokeToken)},
	tenantExportCommand,
	tenantImportCommand,
	tokenCreateCommand,
	{path: "token revoke", args: "TOKEN-ID", summary: "revoke an operator (or tenant) token", minArgs: 1, maxArgs: 1, setup: noFlags(revokeToken)},
	{path: "get", args: "KEY", summary: "print the value of a key", minArgs: 1, maxArgs: 1, setup: noFlags(dataGet)},
	{path: "put", args: "KEY VALUE", summary: "set a key (VALUE - reads the value from stdin)", minArgs: 2, maxArgs: 2, setup: noFlags(dataPut)},
	{path: "del", args: "KEY", summary: "delete a key", minArgs: 1, maxArgs: 1, setup: noFlags(dataDel)},
	scanCommand,
	txnCommand,
	watchCommand,
	clusterStatusCommand, // cluster.go
	clusterHealthCommand,
	clusterAddCommand,
	clusterPromoteCommand,
	clusterTransferLeaderCommand,
	{path: "cluster remove", args: "NODE-ID", summary: "remove a node from the cluster", minArgs: 1, maxArgs: 1, setup: noFlags(clusterRemove)},
	snapshotSaveCommand,
	snapshotVerifyCommand,
	snapshotRestoreCommand,
	completionCommand,
	{path: "version", summary: "print the version (also tenantkv --version)", setup: noFlags(printVersion)},
	{path: "help", args: "[COMMAND]", summary: "show help for tenantkv or a command", maxArgs: 2},
}

// groups are command words that need a second word.
var groups = []string{"tenant", "token", "cluster", "snapshot"}

func isGroup(word string) bool { return slices.Contains(groups, word) }

func noFlags(f runFunc) func(*flag.FlagSet, func(string) string) runFunc {
	return func(*flag.FlagSet, func(string) string) runFunc { return f }
}

// lookup finds the command named by words, or nil.
func lookup(words []string) *command {
	path := strings.Join(words, " ")
	for _, c := range commands {
		if c.path == path {
			return c
		}
	}
	return nil
}

// cli is one invocation: its streams, environment and global flags.
type cli struct {
	env    func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	cmd    *command // the command being run
	g      globalFlags
	set    map[string]bool // flags given on the command line
}

// run runs the command line args and returns the exit status. It is main
// without the process: tests call it directly.
func run(ctx context.Context, args []string, env func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	// bench has flags of its own (its --json takes a file), so it is
	// dispatched before the global flags are parsed.
	if len(args) > 0 && args[0] == "bench" {
		return benchCommand(ctx, args[1:], stdout, stderr)
	}
	x := &cli{env: env, stdin: stdin, stdout: stdout, stderr: stderr, set: map[string]bool{}}
	err := x.dispatch(ctx, args)
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "tenantkv: %s\n", ue.msg)
		if ue.cmd != nil {
			fmt.Fprintf(stderr, "usage: %s\n", synopsis(ue.cmd))
			fmt.Fprintf(stderr, "Run 'tenantkv help %s' for details.\n", ue.cmd.path)
		} else {
			fmt.Fprintln(stderr, "Run 'tenantkv help' for usage.")
		}
		return 2
	default:
		fmt.Fprintln(stderr, errorLine(err))
		return 1
	}
}

func (x *cli) dispatch(ctx context.Context, args []string) error {
	cmd, runCmd, pos, err := x.parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		if cmd == nil {
			printUsage(x.stdout)
		} else {
			printCommandHelp(x.stdout, cmd)
		}
		return err
	case err != nil:
		return err
	case cmd.path == "help":
		return x.help(pos)
	}
	return runCmd(ctx, x, pos)
}

// parse finds the command in args, parses its flags and the global ones
// into x, and checks the number of positional arguments. A request for help
// is flag.ErrHelp, with cmd nil for the top level.
func (x *cli) parse(args []string) (cmd *command, runCmd runFunc, pos []string, err error) {
	words, rest := splitCommand(args)
	if len(words) == 0 {
		// Only flags: -h asks for help and --version is the version
		// command; anything else is a mistake.
		fs := newFlagSet("tenantkv")
		x.g.register(fs, x.env)
		showVersion := fs.Bool("version", false, "print the version")
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, nil, nil, err
			}
			return nil, nil, nil, usagef(nil, "%v", flagError(fs, err))
		}
		if *showVersion {
			x.cmd = lookup([]string{"version"})
			return x.cmd, printVersion, nil, nil
		}
		return nil, nil, nil, usagef(nil, "no command given")
	}
	cmd = lookup(words)
	if cmd == nil {
		if err := leadingFlagError(args, x.env); err != nil {
			// "--tenat acme get k": the unknown flag made "acme" look like
			// the command; the flag is the mistake.
			return nil, nil, nil, err
		}
		if isGroup(words[0]) && len(words) == 1 {
			return nil, nil, nil, usagef(nil, "%q needs a subcommand: %s", words[0], strings.Join(subcommands(words[0]), ", "))
		}
		return nil, nil, nil, unknownCommand(words)
	}

	x.cmd = cmd
	fs := newFlagSet("tenantkv " + cmd.path)
	x.g.register(fs, x.env)
	if cmd.setup != nil {
		runCmd = cmd.setup(fs, x.env)
	}
	pos, err = parseInterspersed(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cmd, nil, nil, err
		}
		return cmd, nil, nil, usagef(cmd, "%v", flagError(fs, err))
	}
	fs.Visit(func(f *flag.Flag) { x.set[f.Name] = true })
	switch {
	case len(pos) < cmd.minArgs:
		return cmd, nil, nil, usagef(cmd, "%s: missing argument", cmd.path)
	case cmd.maxArgs >= 0 && len(pos) > cmd.maxArgs:
		return cmd, nil, nil, usagef(cmd, "%s: too many arguments", cmd.path)
	}
	return cmd, runCmd, pos, nil
}

func subcommands(group string) []string {
	var out []string
	for _, c := range commands {
		if g, sub, ok := strings.Cut(c.path, " "); ok && g == group {
			out = append(out, sub)
		}
	}
	return out
}

// help prints help for tenantkv or for the command named by words.
func (x *cli) help(words []string) error {
	if len(words) == 0 {
		printUsage(x.stdout)
		return nil
	}
	if cmd := lookup(words); cmd != nil {
		printCommandHelp(x.stdout, cmd)
		return nil
	}
	if len(words) == 1 && isGroup(words[0]) {
		for _, sub := range subcommands(words[0]) {
			printCommandHelp(x.stdout, lookup([]string{words[0], sub}))
			fmt.Fprintln(x.stdout)
		}
		return nil
	}
	return unknownCommand(words)
}

// printVersion is `tenantkv version` and `tenantkv --version`: one line,
// or with --json one object.
func printVersion(_ context.Context, x *cli, _ []string) error {
	if x.g.json {
		return writeJSON(x.stdout, struct {
			Version string `json:"version"`
			Go      string `json:"go"`
			OS      string `json:"os"`
			Arch    string `json:"arch"`
		}{versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH})
	}
	fmt.Fprintf(x.stdout, "tenantkv %s %s %s/%s\n", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

func versionString() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
		if s.Key == "vcs.modified" && s.Value == "true" {
			v += "+dirty"
		}
	}
	return v
}

// errorLine renders err as the one line printed on stderr, always starting
// with "tenantkv: ".
func errorLine(err error) string {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	msg = strings.TrimPrefix(msg, "tenantkv: ")
	// A wrapped client error carries the prefix again: one is enough.
	msg = strings.ReplaceAll(msg, ": tenantkv: ", ": ")
	return "tenantkv: " + msg
}

// withDB opens a client on the global flags' endpoints and token, runs f
// within --timeout, and closes the client.
func (x *cli) withDB(ctx context.Context, f func(ctx context.Context, db *client.DB) error) error {
	endpoints := splitList(x.g.endpoints)
	if len(endpoints) == 0 {
		return usagef(x.cmd, "--endpoints: no address given")
	}
	if x.g.timeout < 0 {
		return usagef(x.cmd, "--timeout: negative duration %v", x.g.timeout)
	}
	tc, err := x.g.clientTLS()
	if errors.Is(err, errTLSPair) {
		return usagef(x.cmd, "%v", err)
	}
	if err != nil {
		return err
	}
	token, err := resolveToken(&x.g, x.set, x.env)
	if err != nil {
		return err
	}
	if x.g.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, x.g.timeout, errTimeout)
		defer cancel()
	}
	err = x.runDB(ctx, endpoints, &client.Options{Token: token, TLS: tc}, f)
	if err != nil && context.Cause(ctx) == errTimeout {
		return fmt.Errorf("timed out after %v: %w", x.g.timeout, err)
	}
	return err
}

var errTimeout = errors.New("tenantkv: --timeout expired")

func (x *cli) runDB(ctx context.Context, endpoints []string, opts *client.Options, f func(context.Context, *client.DB) error) error {
	db, err := client.Open(ctx, endpoints, opts)
	if err != nil {
		if opts.Token == "" && errors.Is(err, client.ErrPermissionDenied) {
			return fmt.Errorf("%w (no token given: use --token, --token-file or %s)", err, envToken)
		}
		return err
	}
	defer db.Close()
	return f(ctx, db)
}
