package bench

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// The plots of the HTML report, written as inline SVG by hand: line charts
// with linear or logarithmic axes, and horizontal bar charts. Every element
// is closed and every text escaped, so that the output is well-formed XML.

// numColors is the number of colours of the palette.
const numColors = 10

// palette returns the colour of series i; colours repeat after numColors,
// and lineChart dashes the lines of the second round.
func palette(i int) string {
	colors := [numColors]string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
		"#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"}
	return colors[i%numColors]
}

// Sizes of a chart, in pixels.
const (
	chartW   = 640
	chartH   = 300
	padLeft  = 70
	padRight = 20
	padTop   = 30
	padBot   = 45
)

// plotSeries is one line of a chart.
type plotSeries struct {
	name string
	x, y []float64
}

// axis maps data values to pixels and labels its ticks.
type axis struct {
	label    string
	log      bool
	min, max float64
	ticks    []float64
	format   func(float64) string
}

// newLinearAxis spans [0 or lo, hi] with round ticks.
func newLinearAxis(label string, lo, hi float64, fromZero bool, format func(float64) string) axis {
	if fromZero {
		lo = 0
	}
	if hi <= lo {
		hi = lo + 1
	}
	step := niceStep((hi - lo) / 5)
	// A value a hair above a round number (10.003 seconds) does not add a
	// whole step.
	a := axis{label: label, min: math.Floor(lo/step) * step, max: math.Ceil(hi/step-0.01) * step, format: format}
	for v := a.min; v <= a.max+step/2; v += step {
		a.ticks = append(a.ticks, v)
	}
	return a
}

// newLogAxis spans whole decades around [lo, hi], which must be positive.
func newLogAxis(label string, lo, hi float64, format func(float64) string) axis {
	lo, hi = math.Max(lo, 1e-9), math.Max(hi, 1e-9)
	a := axis{label: label, log: true, min: math.Pow(10, math.Floor(math.Log10(lo))), format: format}
	a.max = math.Pow(10, math.Ceil(math.Log10(hi)))
	if a.max <= a.min {
		a.max = a.min * 10
	}
	for v := a.min; v <= a.max*1.001; v *= 10 {
		a.ticks = append(a.ticks, v)
	}
	return a
}

// niceStep rounds a step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// frac is the position of v along the axis, 0 at min and 1 at max.
func (a axis) frac(v float64) float64 {
	if a.log {
		v = math.Max(v, a.min)
		return (math.Log10(v) - math.Log10(a.min)) / (math.Log10(a.max) - math.Log10(a.min))
	}
	return (v - a.min) / (a.max - a.min)
}

// lineChart writes an SVG line chart of the series.
func lineChart(b *strings.Builder, title string, xa, ya axis, series []plotSeries) {
	plotW, plotH := float64(chartW-padLeft-padRight), float64(chartH-padTop-padBot)
	px := func(v float64) float64 { return padLeft + xa.frac(v)*plotW }
	py := func(v float64) float64 { return padTop + (1-ya.frac(v))*plotH }
	legendH := 16 * len(series)
	svgOpen(b, chartW, chartH+legendH, title)
	// Grid and ticks.
	for _, t := range ya.ticks {
		y := py(t)
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" class="grid"/>`, padLeft, y, chartW-padRight, y)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" class="tick" text-anchor="end">%s</text>`, padLeft-6, y+4, esc(ya.format(t)))
	}
	for _, t := range xa.ticks {
		x := px(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" class="grid"/>`, x, padTop, x, chartH-padBot)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" class="tick" text-anchor="middle">%s</text>`, x, chartH-padBot+16, esc(xa.format(t)))
	}
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" class="frame"/>`, padLeft, padTop, plotW, plotH)
	fmt.Fprintf(b, `<text x="%.1f" y="%d" class="label" text-anchor="middle">%s</text>`, padLeft+plotW/2, chartH-8, esc(xa.label))
	fmt.Fprintf(b, `<text x="14" y="%.1f" class="label" text-anchor="middle" transform="rotate(-90 14 %.1f)">%s</text>`,
		padTop+plotH/2, padTop+plotH/2, esc(ya.label))
	for i, s := range series {
		var pts strings.Builder
		for j := range s.x {
			if j > 0 {
				pts.WriteByte(' ')
			}
			fmt.Fprintf(&pts, "%.1f,%.1f", px(s.x[j]), py(s.y[j]))
		}
		color, dash := palette(i), ""
		if i >= numColors {
			dash = ` stroke-dasharray="5 3"`
		}
		fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.8"%s/>`, pts.String(), color, dash)
		if len(s.x) <= 12 {
			for j := range s.x {
				fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>`, px(s.x[j]), py(s.y[j]), color)
			}
		}
		ly := chartH + 16*i + 4
		fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"%s/>`, padLeft, ly+6, padLeft+14, ly+6, color, dash)
		fmt.Fprintf(b, `<text x="%d" y="%d" class="legend">%s</text>`, padLeft+20, ly+10, esc(s.name))
	}
	b.WriteString("</svg>\n")
}

// bar is one bar of a bar chart.
type bar struct {
	label string
	value float64
	color int
}

// barChart writes an SVG chart of horizontal bars, one per row.
func barChart(b *strings.Builder, title, unit string, bars []bar) {
	const rowH, labelW, valueW = 22, 260, 90
	h := padTop + rowH*len(bars) + 10
	svgOpen(b, chartW, h, title)
	maxV := 0.0
	for _, x := range bars {
		maxV = math.Max(maxV, x.value)
	}
	if maxV <= 0 {
		maxV = 1
	}
	plotW := float64(chartW - labelW - valueW)
	for i, x := range bars {
		y := padTop + rowH*i
		w := math.Max(x.value/maxV*plotW, 0)
		fmt.Fprintf(b, `<text x="%d" y="%d" class="tick" text-anchor="end">%s</text>`, labelW-6, y+15, esc(clip(x.label, 42)))
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`, labelW, y+3, w, rowH-6, palette(x.color))
		fmt.Fprintf(b, `<text x="%.1f" y="%d" class="tick">%s %s</text>`, float64(labelW)+w+6, y+15, esc(formatValue(x.value)), esc(unit))
	}
	b.WriteString("</svg>\n")
}

func svgOpen(b *strings.Builder, w, h int, title string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img">`, w, h, w, h)
	fmt.Fprintf(b, `<title>%s</title>`, esc(title))
	fmt.Fprintf(b, `<text x="%d" y="18" class="title">%s</text>`, padLeft, esc(title))
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// esc escapes text for HTML and XML alike.
func esc(s string) string { return html.EscapeString(s) }

// formatUS formats a latency in microseconds: "250µs", "1.5ms", "2s".
func formatUS(us float64) string {
	switch {
	case us >= 1e6:
		return strconv.FormatFloat(us/1e6, 'g', 3, 64) + "s"
	case us >= 1e3:
		return strconv.FormatFloat(us/1e3, 'g', 3, 64) + "ms"
	}
	return strconv.FormatFloat(us, 'g', 3, 64) + "µs"
}

// formatCount formats a count compactly: "950", "12k", "1.5M".
func formatCount(v float64) string {
	switch {
	case math.Abs(v) >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case math.Abs(v) >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}
