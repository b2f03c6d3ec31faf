package bench

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"
)

// WriteText writes the report as plain-text tables: per scenario, one line
// per run (throughput and latency percentiles in microseconds), the derived
// figures, the notes, errors by class and the busiest tenants.
func (r *Report) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	for i, s := range r.Scenarios {
		if i > 0 {
			fmt.Fprintln(ew)
		}
		s.writeText(ew)
	}
	return ew.err
}

func (s *ScenarioResult) writeText(w io.Writer) {
	fmt.Fprintf(w, "== %s", s.Name)
	if s.Target != "" {
		fmt.Fprintf(w, " (%s)", s.Target)
	}
	fmt.Fprintln(w)
	if s.Description != "" {
		fmt.Fprintln(w, s.Description)
	}
	// The first column is padded by hand to be aligned left, the numbers
	// by tabwriter to be aligned right.
	width := len("run")
	for _, r := range s.Runs {
		width = max(width, utf8.RuneCountInString(r.Name))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\t ops/s\t p50 µs\t p90 µs\t p99 µs\t p99.9 µs\t max µs\t errors\t rate-limited\t\n", width, "run")
	for _, r := range s.Runs {
		l := r.Latency
		fmt.Fprintf(tw, "%-*s\t %s\t %s\t %s\t %s\t %s\t %s\t %s\t %s\t\n", width, r.Name,
			thousands(int64(r.Throughput+0.5)), thousands(l.P50), thousands(l.P90), thousands(l.P99),
			thousands(l.P999), thousands(l.Max), thousands(r.ErrorCount), thousands(r.RateLimited))
	}
	tw.Flush()
	if len(s.Figures) > 0 {
		fmt.Fprintln(w, "figures:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, f := range s.Figures {
			fmt.Fprintf(tw, "  %s\t%s %s\n", f.Name, formatValue(f.Value), f.Unit)
		}
		tw.Flush()
	}
	for _, r := range s.Runs {
		if len(r.Errors) == 0 {
			continue
		}
		fmt.Fprintf(w, "errors of %q:", r.Name)
		for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
			fmt.Fprintf(w, " %s %d;", k, r.Errors[k])
		}
		fmt.Fprintln(w)
	}
	for _, r := range s.Runs {
		if len(r.TopTenants) < 2 {
			continue
		}
		fmt.Fprintf(w, "busiest tenants of %q:\n", r.Name)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "  tenant\t ops\t share\t mean µs\t errors\t")
		for _, t := range r.TopTenants {
			fmt.Fprintf(tw, "  %s\t %s\t %.2f%%\t %.0f\t %d\t\n", t.Name, thousands(t.Ops), 100*t.Share, t.MeanUS, t.Errors)
		}
		tw.Flush()
	}
	for _, n := range s.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// thousands formats n with commas between groups of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// formatValue formats a figure: from 1,000 up as a whole number with
// separators, below with up to four significant digits.
func formatValue(v float64) string {
	if v >= 1000 || v <= -1000 {
		return thousands(int64(math.Round(v)))
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// errWriter remembers the first error of its writer and drops what follows.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return len(p), nil
	}
	_, e.err = e.w.Write(p)
	return len(p), nil
}
