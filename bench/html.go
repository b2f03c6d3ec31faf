package bench

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
)

// reportCSS is the report's only style: no fonts or anything else is
// fetched from the network, and there are no scripts.
const reportCSS = `body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1320px;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.3em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:0.8em 0;font-size:0.9em}
th,td{padding:0.25em 0.7em;border-bottom:1px solid #e4e4e4;text-align:right}
th:first-child,td:first-child{text-align:left}
code{background:#f4f4f4;padding:0 0.3em}
.meta{color:#555;font-size:0.9em}
.charts{display:flex;flex-wrap:wrap;gap:1em}
svg{background:#fff;border:1px solid #e4e4e4}
svg .grid{stroke:#eee;stroke-width:1}
svg .frame{fill:none;stroke:#999;stroke-width:1}
svg .tick{font-size:11px;fill:#444}
svg .label{font-size:12px;fill:#222}
svg .title{font-size:13px;font-weight:bold;fill:#222}
svg .legend{font-size:11px;fill:#222}`

// WriteHTML writes the report as one self-contained HTML page: tables of
// every run and figure, and inline SVG plots of throughput, latency
// percentiles and throughput over time. It is also well-formed XML.
func (r *Report) WriteHTML(w io.Writer) error {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>")
	b.WriteString("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>")
	b.WriteString("<title>tenantkv bench report</title><style>" + reportCSS + "</style></head>\n<body>\n")
	b.WriteString("<h1>tenantkv bench report</h1>\n")
	fmt.Fprintf(&b, "<p class=\"meta\">%s &#183; %s &#183; %s elapsed</p>\n",
		esc(r.Date.Format("2006-01-02 15:04 MST")), esc(r.Machine.String()), esc(formatUS(r.ElapsedSec*1e6)))
	fmt.Fprintf(&b, "<p class=\"meta\">Command: <code>%s</code></p>\n", esc(strings.Join(r.CommandLine, " ")))
	if len(r.Scenarios) > 1 {
		b.WriteString("<ul>")
		for _, s := range r.Scenarios {
			fmt.Fprintf(&b, "<li><a href=\"#%s\">%s</a>: %s</li>", esc(s.Name), esc(s.Name), esc(s.Description))
		}
		b.WriteString("</ul>\n")
		var bars []bar
		for i, s := range r.Scenarios {
			for _, run := range s.Runs {
				bars = append(bars, bar{label: s.Name + ": " + run.Name, value: run.Throughput, color: i})
			}
		}
		b.WriteString("<div class=\"charts\">")
		barChart(&b, "Throughput of every run (ops/s), coloured by scenario", "ops/s", bars)
		b.WriteString("</div>\n")
	}
	for _, s := range r.Scenarios {
		s.writeHTML(&b)
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func (s *ScenarioResult) writeHTML(b *strings.Builder) {
	fmt.Fprintf(b, "<h2 id=\"%s\">%s</h2>\n", esc(s.Name), esc(s.Name))
	fmt.Fprintf(b, "<p>%s</p>\n", esc(s.Description))
	if s.Target != "" {
		fmt.Fprintf(b, "<p class=\"meta\">Target: %s &#183; %s</p>\n", esc(s.Target), esc(formatUS(s.ElapsedSec*1e6)))
	}
	b.WriteString("<table><tr><th>run</th><th>ops/s</th><th>p50 µs</th><th>p90 µs</th><th>p99 µs</th><th>p99.9 µs</th><th>max µs</th><th>errors</th><th>rate limited</th><th>not found</th><th>clients</th><th>tenants</th></tr>\n")
	for _, r := range s.Runs {
		l := r.Latency
		fmt.Fprintf(b, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%d</td><td>%s</td></tr>\n",
			esc(r.Name), thousands(int64(r.Throughput+0.5)), thousands(l.P50), thousands(l.P90), thousands(l.P99),
			thousands(l.P999), thousands(l.Max), thousands(r.ErrorCount), thousands(r.RateLimited), thousands(r.NotFound),
			r.Params.Clients, thousands(int64(r.Params.Tenants)))
	}
	b.WriteString("</table>\n")
	if len(s.Figures) > 0 {
		b.WriteString("<table><tr><th>figure</th><th>value</th></tr>\n")
		for _, f := range s.Figures {
			fmt.Fprintf(b, "<tr><td>%s</td><td>%s %s</td></tr>\n", esc(f.Name), esc(formatValue(f.Value)), esc(f.Unit))
		}
		b.WriteString("</table>\n")
	}
	if len(s.Notes) > 0 {
		b.WriteString("<ul>")
		for _, n := range s.Notes {
			fmt.Fprintf(b, "<li>%s</li>", esc(n))
		}
		b.WriteString("</ul>\n")
	}
	for _, r := range s.Runs {
		if len(r.Errors) == 0 {
			continue
		}
		fmt.Fprintf(b, "<p>Errors of %s:", esc(r.Name))
		for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
			fmt.Fprintf(b, " %s %d;", esc(k), r.Errors[k])
		}
		b.WriteString("</p>\n")
	}
	if len(s.Runs) == 0 {
		return
	}
	b.WriteString("<div class=\"charts\">\n")
	series := seriesIndex(s.Runs)
	var tput, p99 []bar
	for _, r := range s.Runs {
		tput = append(tput, bar{label: r.Name, value: r.Throughput, color: series[r.Series]})
		p99 = append(p99, bar{label: r.Name, value: float64(r.Latency.P99), color: series[r.Series]})
	}
	barChart(b, "Throughput (ops/s)", "ops/s", tput)
	barChart(b, "p99 latency (µs)", "µs", p99)
	sweepChart(b, s.Runs)
	percentileChart(b, s.Runs)
	timeChart(b, s.Runs)
	b.WriteString("</div>\n")
	for _, r := range s.Runs {
		if len(r.TopTenants) < 2 {
			continue
		}
		fmt.Fprintf(b, "<details><summary>Busiest tenants of %s</summary><table><tr><th>tenant</th><th>ops</th><th>share</th><th>mean µs</th><th>errors</th></tr>\n", esc(r.Name))
		for _, t := range r.TopTenants {
			fmt.Fprintf(b, "<tr><td>%s</td><td>%s</td><td>%.2f%%</td><td>%.0f</td><td>%d</td></tr>\n",
				esc(t.Name), thousands(t.Ops), 100*t.Share, t.MeanUS, t.Errors)
		}
		b.WriteString("</table></details>\n")
	}
}

// seriesIndex numbers the distinct series of the runs in order of first
// appearance, for colours.
func seriesIndex(runs []*Result) map[string]int {
	idx := map[string]int{}
	for _, r := range runs {
		if _, ok := idx[r.Series]; !ok {
			idx[r.Series] = len(idx)
		}
	}
	return idx
}

// percentileChart plots each run's latency against the percentile, on a
// scale where 90, 99, 99.9 … are evenly spaced.
func percentileChart(b *strings.Builder, runs []*Result) {
	var ss []plotSeries
	lo, hi := math.Inf(1), 0.0
	for _, r := range runs {
		s := plotSeries{name: r.Name}
		for _, p := range r.Curve {
			if p.Percentile >= 100 {
				continue
			}
			s.x = append(s.x, -math.Log10(1-p.Percentile/100))
			s.y = append(s.y, float64(max(p.US, 1)))
			lo, hi = math.Min(lo, float64(max(p.US, 1))), math.Max(hi, float64(p.US))
		}
		if len(s.x) > 0 {
			ss = append(ss, s)
		}
	}
	if len(ss) == 0 {
		return
	}
	labels := []string{"0", "90", "99", "99.9", "99.99", "99.999"}
	xa := axis{label: "percentile", min: 0, max: 5, ticks: []float64{0, 1, 2, 3, 4, 5},
		format: func(v float64) string { return labels[int(v)] }}
	ya := newLogAxis("latency", lo, hi, formatUS)
	lineChart(b, "Latency by percentile", xa, ya, ss)
}

// timeChart plots each run's throughput second by second.
func timeChart(b *strings.Builder, runs []*Result) {
	var ss []plotSeries
	maxX, maxY := 0.0, 0.0
	for _, r := range runs {
		s := plotSeries{name: r.Name}
		for _, p := range r.PerSecond {
			s.x = append(s.x, p.AtSec)
			s.y = append(s.y, p.OpsPerSec)
			maxX, maxY = math.Max(maxX, p.AtSec), math.Max(maxY, p.OpsPerSec)
		}
		if len(s.x) > 0 {
			ss = append(ss, s)
		}
	}
	if len(ss) == 0 {
		return
	}
	xa := newLinearAxis("seconds into the measured phase", 0, maxX, true, func(v float64) string { return formatValue(v) })
	ya := newLinearAxis("ops/s", 0, maxY, true, formatCount)
	lineChart(b, "Throughput over time", xa, ya, ss)
}

// sweepChart plots throughput against the number of clients, one line per
// series, when the runs sweep the number of clients.
func sweepChart(b *strings.Builder, runs []*Result) {
	bySeries := map[string][]*Result{}
	var order []string
	for _, r := range runs {
		if r.Series == "" {
			continue
		}
		if _, ok := bySeries[r.Series]; !ok {
			order = append(order, r.Series)
		}
		bySeries[r.Series] = append(bySeries[r.Series], r)
	}
	var ss []plotSeries
	lo, hi, maxY := math.Inf(1), 0.0, 0.0
	for _, name := range order {
		rs := bySeries[name]
		clients := map[int]bool{}
		for _, r := range rs {
			clients[r.Params.Clients] = true
		}
		if len(clients) < 3 || len(clients) != len(rs) {
			continue
		}
		slices.SortFunc(rs, func(a, b *Result) int { return a.Params.Clients - b.Params.Clients })
		s := plotSeries{name: name}
		for _, r := range rs {
			c := float64(r.Params.Clients)
			s.x = append(s.x, c)
			s.y = append(s.y, r.Throughput)
			lo, hi, maxY = math.Min(lo, c), math.Max(hi, c), math.Max(maxY, r.Throughput)
		}
		ss = append(ss, s)
	}
	if len(ss) == 0 || hi <= lo {
		return
	}
	xa := newLogAxis("concurrent clients", lo, hi, func(v float64) string { return formatValue(v) })
	ya := newLinearAxis("ops/s", 0, maxY, true, formatCount)
	lineChart(b, "Throughput by concurrency", xa, ya, ss)
}
