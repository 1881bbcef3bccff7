package main

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"strconv"
)

// The plot's geometry, in SVG user units.
const (
	width, height            = 800, 440
	left, right, top, bottom = 72, 24, 56, 64
	plotW, plotH             = width - left - right, height - top - bottom
)

var colors = []string{"#c8372d", "#1f6fb2"}

// plot draws the series as lines over shared axes: seconds across, MiB up.
func plot(title string, all []series) []byte {
	var maxT, maxMiB float64
	for _, s := range all {
		maxT = max(maxT, s.end())
		maxMiB = max(maxMiB, s.peak())
	}
	xStep, yStep := niceStep(maxT, 8), niceStep(maxMiB, 6)
	maxT = math.Ceil(maxT/xStep) * xStep
	maxMiB = math.Ceil(maxMiB/yStep) * yStep
	x := func(t float64) float64 { return left + t/maxT*plotW }
	y := func(mib float64) float64 { return top + plotH - mib/maxMiB*plotH }

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="13">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="30" text-anchor="middle" font-size="16" font-weight="bold" fill="#222">%s</text>`+"\n", width/2, html.EscapeString(title))

	// Grid, ticks and their labels.
	for v := 0.0; v <= maxMiB+yStep/2; v += yStep {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e4e4e4"/>`+"\n", left, y(v), left+plotW, y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#444">%s</text>`+"\n", left-8, y(v)+4, label(v))
	}
	for v := 0.0; v <= maxT+xStep/2; v += xStep {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e4e4e4"/>`+"\n", x(v), top, x(v), top+plotH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#444">%s</text>`+"\n", x(v), top+plotH+20, label(v))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>`+"\n", left, top, plotW, plotH)

	// Axis titles.
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#222">time since the command started (seconds)</text>`+"\n", left+plotW/2, height-18)
	fmt.Fprintf(&b, `<text transform="translate(20 %d) rotate(-90)" text-anchor="middle" fill="#222">Go heap in use (MiB)</text>`+"\n", top+plotH/2)

	// The lines, then the legend in the top left corner, which the growing
	// line reaches last.
	for i, s := range all {
		var pts bytes.Buffer
		for j := range s.t {
			fmt.Fprintf(&pts, "%.1f,%.1f ", x(s.t[j]), y(s.mib[j]))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2.5" stroke-linejoin="round" points="%s"/>`+"\n", colors[i%len(colors)], bytes.TrimSpace(pts.Bytes()))
	}
	lx, ly := left+14, top+14
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="356" height="%d" fill="#ffffff" fill-opacity="0.9" stroke="#bbb"/>`+"\n", lx, ly, 14+22*len(all))
	for i, s := range all {
		yy := ly + 18 + 22*i
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", lx+10, yy-4, lx+38, yy-4, colors[i%len(colors)])
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#222">%s (peak %s MiB)</text>`+"\n", lx+46, yy, html.EscapeString(s.label), label(s.peak()))
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// niceStep returns a tick step of 1, 2 or 5 times a power of ten that cuts
// 0..most into at most n intervals.
func niceStep(most float64, n int) float64 {
	if most <= 0 {
		return 1
	}
	raw := most / float64(n)
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*pow >= raw {
			return m * pow
		}
	}
	return 10 * pow
}

// label formats a tick or a figure without needless digits.
func label(v float64) string {
	switch {
	case v >= 100 || v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}
