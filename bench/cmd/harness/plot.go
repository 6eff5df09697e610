package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

var (
	white    = color.RGBA{255, 255, 255, 255}
	black    = color.RGBA{30, 30, 30, 255}
	grid     = color.RGBA{220, 220, 220, 255}
	rampartC = color.RGBA{214, 96, 39, 255}   // rampart targets
	peerC    = color.RGBA{70, 120, 180, 255}  // nginx, HAProxy, Caddy
	baseC    = color.RGBA{140, 140, 140, 255} // direct and the Go floor
	shades   = []color.RGBA{{120, 170, 210, 255}, {50, 100, 160, 255}, {20, 40, 90, 255}}
)

func targetColor(name string) color.RGBA {
	switch {
	case strings.HasPrefix(name, "rampart"):
		return rampartC
	case name == "direct" || strings.HasPrefix(name, "floor"):
		return baseC
	default:
		return peerC
	}
}

// series is one value per bar in a group (a target).
type barChart struct {
	title  string
	unit   string
	labels []string
	values [][]float64 // values[i] are the bars of labels[i]
	colors func(i, j int) color.RGBA
	legend []string
	format func(float64) string
	ref    float64 // draws a dashed reference line at this value when > 0
}

const scale = 2

// render draws a horizontal bar chart: labels on the left, one group of
// bars per label, value written at the end of each bar.
func (c barChart) render() *image.RGBA {
	labelW := 0
	for _, l := range c.labels {
		labelW = max(labelW, textWidth(l, scale))
	}
	bars := 1
	if len(c.values) > 0 {
		bars = len(c.values[0])
	}
	barH, gap := 18, 14
	groupH := bars*barH + gap
	left := 20 + labelW + 12
	plotW := 620
	right := 150
	top := 60
	if len(c.legend) > 0 {
		top += 26
	}
	height := top + len(c.labels)*groupH + 50
	width := left + plotW + right
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), &image.Uniform{white}, image.Point{}, draw.Src)
	drawText(img, 20, 18, c.title, scale, black)

	maxV := 0.0
	for _, g := range c.values {
		for _, v := range g {
			if !math.IsNaN(v) {
				maxV = max(maxV, v)
			}
		}
	}
	step := niceStep(maxV / 5)
	top0 := top
	bottom := top + len(c.labels)*groupH
	if step > 0 {
		axisMax := math.Ceil(maxV/step) * step
		for v := 0.0; v <= axisMax+step/2; v += step {
			x := left + int(v/axisMax*float64(plotW))
			fill(img, x, top0-4, 1, bottom-top0+4, grid)
			s := strconv.FormatFloat(v, 'f', -1, 64)
			drawText(img, x-textWidth(s, 1)/2, bottom+8, s, 1, black)
		}
		drawText(img, left+plotW-textWidth(c.unit, scale), bottom+26, c.unit, scale, black)
		maxV = axisMax
	}
	fill(img, left, top0-4, 1, bottom-top0+4, black)
	if c.ref > 0 && maxV > 0 {
		x := left + int(c.ref/maxV*float64(plotW))
		for y := top0 - 4; y < bottom; y += 8 {
			fill(img, x, y, 2, 4, black)
		}
	}
	for i, label := range c.labels {
		y := top + i*groupH
		drawText(img, left-12-textWidth(label, scale), y+(bars*barH-14)/2, label, scale, black)
		for j, v := range c.values[i] {
			by := y + j*barH
			if math.IsNaN(v) || maxV == 0 {
				continue
			}
			w := int(v / maxV * float64(plotW))
			fill(img, left+1, by+2, w, barH-4, c.colors(i, j))
			s := c.format(v)
			drawText(img, left+w+6, by+2, s, 1, black)
		}
	}
	lx := left
	for j, name := range c.legend {
		fill(img, lx, 48, 14, 14, c.colors(0, j))
		drawText(img, lx+20, 48, name, scale, black)
		lx += 20 + textWidth(name, scale) + 30
	}
	return img
}

func fill(img *image.RGBA, x, y, w, h int, c color.Color) {
	draw.Draw(img, image.Rect(x, y, x+w, y+h), &image.Uniform{c}, image.Point{}, draw.Src)
}

// niceStep rounds x up to 1, 2 or 5 times a power of ten.
func niceStep(x float64) float64 {
	if x <= 0 || math.IsNaN(x) {
		return 0
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

func savePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writePlots draws the figures of the report and returns their file names.
func writePlots(r *Results, dir string) ([]string, error) {
	sums := r.Summarize()
	if len(sums) == 0 {
		return nil, nil
	}
	var labels []string
	var ratioLabels []string
	var rps, cpu, lat, ratios [][]float64
	ratioRefs := []string{"nginx-full", "caddy", "floor"}
	for _, s := range sums {
		labels = append(labels, s.Target)
		rps = append(rps, []float64{s.RPS})
		cpu = append(cpu, []float64{s.ProxyCPUus})
		lat = append(lat, []float64{s.P50us / 1000, s.P99us / 1000, s.P999us / 1000})
		if s.Target == "direct" {
			continue // no proxy: its ratios would squash every other bar
		}
		ratioLabels = append(ratioLabels, s.Target)
		row := make([]float64, len(ratioRefs))
		for j, ref := range ratioRefs {
			row[j] = math.NaN()
			if v, ok := s.Ratio[ref]; ok {
				row[j] = v
			}
		}
		ratios = append(ratios, row)
	}
	byTarget := func(i, _ int) color.RGBA { return targetColor(labels[i]) }
	reps := fmt.Sprintf("MEDIAN OF %d", r.Reps)
	charts := []struct {
		file  string
		chart barChart
	}{
		{"throughput.png", barChart{
			title: fmt.Sprintf("REQUESTS/S, HTTPS KEEP-ALIVE, %d CONNECTIONS (%s)", r.Conns, reps),
			unit:  "REQ/S", labels: labels, values: rps, colors: byTarget,
			format: func(v float64) string { return fmt.Sprintf("%.0f", v) },
		}},
		{"latency.png", barChart{
			title: fmt.Sprintf("LATENCY AT FULL LOAD (%s)", reps),
			unit:  "MS", labels: labels, values: lat, legend: []string{"p50", "p99", "p99.9"},
			colors: func(_, j int) color.RGBA { return shades[j] },
			format: func(v float64) string { return fmt.Sprintf("%.2f", v) },
		}},
		{"ratios.png", barChart{
			title: fmt.Sprintf("REQUESTS/S RATIO, SAME REPETITION (%s)", reps),
			unit:  "×", labels: ratioLabels, values: ratios, ref: 1, legend: []string{"× nginx-full", "× caddy", "× floor"},
			colors: func(_, j int) color.RGBA { return shades[j] },
			format: func(v float64) string { return fmt.Sprintf("%.2f", v) },
		}},
		{"cpu.png", barChart{
			title: fmt.Sprintf("PROXY CPU PER REQUEST (%s)", reps),
			unit:  "µS/REQ", labels: labels, values: cpu, colors: byTarget,
			format: func(v float64) string { return fmt.Sprintf("%.1f", v) },
		}},
	}
	var files []string
	for _, c := range charts {
		if err := savePNG(filepath.Join(dir, c.file), c.chart.render()); err != nil {
			return nil, err
		}
		files = append(files, c.file)
	}
	return files, nil
}
