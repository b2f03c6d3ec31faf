package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/tenantkv/tenantkv/client"
)

var tenantExportCommand = &command{
	path:    "tenant export",
	args:    "NAME > FILE",
	summary: "write a consistent snapshot of a tenant (config and keys) to stdout",
	long: `The export holds the tenant's state, limits and labels and every key and value
as of one instant, in the format of docs/OPERATIONS.md ("Export format"),
ending with a record count and a CRC-32C checksum. stdout must not be a
terminal. On a terminal, stderr shows a progress bar. Unlike other commands,
export has no time limit unless --timeout is given.
`,
	minArgs: 1, maxArgs: 1,
	setup: noFlags(tenantExport),
}

var tenantImportCommand = &command{
	path:    "tenant import",
	args:    "NAME < FILE",
	summary: "load an export into a new or empty tenant",
	long: `The whole file is read and its checksum verified before anything is written;
a damaged file changes nothing. If no tenant is called NAME it is created
with the file's limits and labels (NAME wins over the name in the file), and
given the file's state once loaded. An existing tenant must be active and
empty; it keeps its own configuration. Keys are written in atomic batches of
at most 1,000 keys and about 1 MiB. If the import fails after writing began,
the error says how far it got and what to clean up; nothing is deleted for
you. stdin must not be a terminal. On a terminal, stderr shows a progress
bar. Unlike other commands, import has no time limit unless --timeout is
given.
`,
	minArgs: 1, maxArgs: 1,
	setup: noFlags(tenantImport),
}

func tenantExport(ctx context.Context, x *cli, args []string) error {
	if isTTY(x.stdout) {
		return usagef(x.cmd, "stdout is a terminal: redirect it to a file (tenantkv tenant export %s > %s.tkvx)", args[0], args[0])
	}
	if !x.set["timeout"] {
		x.g.timeout = 0
	}
	bar := newProgressBar(x.stderr, "export "+args[0])
	return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		_, err := db.ExportTenant(ctx, args[0], x.stdout, bar.update)
		bar.finish(err == nil)
		return err
	})
}

func tenantImport(ctx context.Context, x *cli, args []string) error {
	if isTTY(x.stdin) {
		return usagef(x.cmd, "stdin is a terminal: redirect it from an export file (tenantkv tenant import %s < FILE)", args[0])
	}
	if !x.set["timeout"] {
		x.g.timeout = 0
	}
	bar := newProgressBar(x.stderr, "import "+args[0])
	return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		sum, err := db.ImportTenant(ctx, args[0], x.stdin, bar.update)
		bar.finish(err == nil)
		if err != nil {
			return err
		}
		what := "tenant"
		if sum.Created {
			what = "new tenant"
		}
		fmt.Fprintf(x.stdout, "imported %d keys (%d bytes) into %s %s\n", sum.Keys, sum.Bytes, what, sum.Tenant)
		return nil
	})
}

// isTTY reports whether f is an *os.File open on a terminal (a
// character device other than the null device).
func isTTY(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	st, err := file.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(st, null)
}

// progressBar draws the progress of an export or import on one line of a
// terminal, at most ten times a second. Writing to anything but a terminal,
// it draws nothing.
type progressBar struct {
	w     io.Writer // nil: draw nothing
	label string
	last  time.Time
	cur   client.Progress
	drawn bool
}

func newProgressBar(w io.Writer, label string) *progressBar {
	if !isTTY(w) {
		return &progressBar{}
	}
	return &progressBar{w: w, label: label}
}

// update records p and redraws if enough time has passed or a phase ended.
func (b *progressBar) update(p client.Progress) {
	if b.w == nil {
		return
	}
	phaseChange := b.drawn && p.Phase != b.cur.Phase
	if phaseChange {
		b.draw() // the last state of the previous phase
		fmt.Fprintln(b.w)
	}
	b.cur = p
	if now := time.Now(); phaseChange || now.Sub(b.last) >= 100*time.Millisecond {
		b.last = now
		b.draw()
	}
}

func (b *progressBar) draw() {
	fmt.Fprintf(b.w, "\r%s\x1b[K", renderProgress(b.label, b.cur, 30))
	b.drawn = true
}

// finish draws the final state and ends the line; after a failure it ends
// the line where it stopped, so the error shows below it.
func (b *progressBar) finish(ok bool) {
	if b.w == nil || !b.drawn {
		return
	}
	if ok {
		b.draw()
	}
	fmt.Fprintln(b.w)
}

// renderProgress renders one line, such as
// "import acme load [=========>          ]  45% 1125/2500 keys 1.1 MiB".
// Without a known total it shows only the counts. A total that turns out to
// be too low (totals of an export are the server's usage when it began)
// shows a full bar.
func renderProgress(label string, p client.Progress, width int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s ", label, p.Phase)
	if p.TotalKeys > 0 {
		frac := min(float64(p.Keys)/float64(p.TotalKeys), 1)
		n := int(frac * float64(width))
		bar := strings.Repeat("=", n)
		if n < width {
			bar += ">" + strings.Repeat(" ", width-n-1)
		}
		fmt.Fprintf(&sb, "[%s] %3d%% %d/%d keys", bar, int(frac*100), p.Keys, p.TotalKeys)
	} else {
		fmt.Fprintf(&sb, "%d keys", p.Keys)
	}
	fmt.Fprintf(&sb, " %s", formatBytes(p.Bytes))
	return sb.String()
}

// formatBytes renders n bytes in binary units, such as "1.5 MiB".
func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
