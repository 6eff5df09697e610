package main

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// Results is everything one run measured; the report is computed from it
// alone, so docs/BENCHMARKS.md can be regenerated from the committed JSON.
type Results struct {
	Date       string            `json:"date"`
	Command    string            `json:"command"`
	Quick      bool              `json:"quick"`
	Reps       int               `json:"reps"`
	DurationS  float64           `json:"duration_s"`
	WarmupS    float64           `json:"warmup_s"`
	Conns      int               `json:"conns"`
	Threads    int               `json:"threads"`
	ProxyCPUs  string            `json:"proxy_cpus"`
	LoadCPUs   string            `json:"load_cpus"`
	Seed       int64             `json:"seed"`
	Machine    Machine           `json:"machine"`
	Versions   map[string]string `json:"versions"`
	Targets    []TargetInfo      `json:"targets"`
	Order      [][]string        `json:"order"`
	Runs       []Run             `json:"runs"`
	Handshakes []LoadRun         `json:"handshakes,omitempty"`
	HSConns    int               `json:"handshake_conns,omitempty"`
	OpenLoop   []LoadRun         `json:"open_loop,omitempty"`
	Notes      []string          `json:"notes,omitempty"`
}

// Machine describes where the numbers come from.
type Machine struct {
	CPU        string `json:"cpu"`
	Cores      int    `json:"cores"`
	Kernel     string `json:"kernel"`
	MemoryGiB  int    `json:"memory_gib"`
	LoadBefore string `json:"load_before"`
	LoadAfter  string `json:"load_after"`
}

// TargetInfo is one system under test.
type TargetInfo struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Skipped     string   `json:"skipped,omitempty"` // why it was not measured
	TLS         string   `json:"tls,omitempty"`     // negotiated by the preflight request
	Headers     []string `json:"headers,omitempty"` // security headers seen by the preflight
	RSSKiB      int64    `json:"peak_rss_kib,omitempty"`
	Config      string   `json:"config,omitempty"`  // generated configuration, for the report
	Profile     string   `json:"profile,omitempty"` // go tool pprof -top of a CPU profile under load
}

// Run is one closed-loop wrk measurement of one target in one repetition.
type Run struct {
	Rep         int     `json:"rep"`
	Target      string  `json:"target"`
	RPS         float64 `json:"rps"`
	Requests    int64   `json:"requests"`
	P50us       float64 `json:"p50_us"`
	P99us       float64 `json:"p99_us"`
	P999us      float64 `json:"p999_us"`
	MaxUs       float64 `json:"max_us"`
	ProxyCPUus  float64 `json:"proxy_cpu_us_per_req"`    // proxy process tree, user+system
	UpCPUus     float64 `json:"upstream_cpu_us_per_req"` // the upstream's share on the same core
	LoadCPUPct  float64 `json:"loadgen_cpu_pct"`         // wrk's CPU use over the run; near 100 means wrk was the limit
	Errors      int64   `json:"errors"`                  // connect, read, write, timeout
	Non2xx      int64   `json:"non_2xx"`                 // status >= 400 as counted by wrk
	ProxyCPUPct float64 `json:"proxy_core_pct"`          // proxy + upstream CPU over wall time
}

// LoadRun is one loadgen measurement (handshakes or open loop).
type LoadRun struct {
	Target     string  `json:"target"`
	Level      string  `json:"level,omitempty"` // open loop: whose capacity the rate is half of
	Rate       float64 `json:"rate,omitempty"`  // open loop: requests/s asked for
	Rep        int     `json:"rep"`
	PerSecond  float64 `json:"per_second"`
	Requests   int64   `json:"requests"`
	P50us      float64 `json:"p50_us"`
	P99us      float64 `json:"p99_us"`
	P999us     float64 `json:"p999_us"`
	Errors     int64   `json:"errors"`
	Non2xx     int64   `json:"non_2xx"`
	Dropped    int64   `json:"dropped,omitempty"`
	ProxyCPUus float64 `json:"proxy_cpu_us_per_req"`
	LoadCPUPct float64 `json:"loadgen_cpu_pct"`
	FirstError string  `json:"first_error,omitempty"`
}

// refs are the targets every other is compared with, in column order.
var refs = []string{"nginx", "nginx-full", "caddy", "floor"}

// Summary is one target's medians over the repetitions.
type Summary struct {
	Target     string
	N          int
	RPS        float64
	P50us      float64
	P99us      float64
	P999us     float64
	ProxyCPUus float64
	UpCPUus    float64
	LoadCPUPct float64
	RSSKiB     int64
	Errors     int64 // summed over repetitions
	Non2xx     int64
	Ratio      map[string]float64 // median of same-repetition requests/s ratios to each ref
	P99Ratio   map[string]float64 // median of same-repetition p99 ratios to each ref
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Summarize computes per-target medians and same-repetition ratios, in the
// order the targets were declared.
func (r *Results) Summarize() []Summary {
	byRep := map[int]map[string]Run{}
	for _, run := range r.Runs {
		if byRep[run.Rep] == nil {
			byRep[run.Rep] = map[string]Run{}
		}
		byRep[run.Rep][run.Target] = run
	}
	var out []Summary
	for _, t := range r.Targets {
		if t.Skipped != "" {
			continue
		}
		var rps, p50, p99, p999, cpu, up, load []float64
		s := Summary{Target: t.Name, RSSKiB: t.RSSKiB, Ratio: map[string]float64{}, P99Ratio: map[string]float64{}}
		ratios := map[string][]float64{}
		p99ratios := map[string][]float64{}
		for _, run := range r.Runs {
			if run.Target != t.Name {
				continue
			}
			s.N++
			rps = append(rps, run.RPS)
			p50 = append(p50, run.P50us)
			p99 = append(p99, run.P99us)
			p999 = append(p999, run.P999us)
			cpu = append(cpu, run.ProxyCPUus)
			up = append(up, run.UpCPUus)
			load = append(load, run.LoadCPUPct)
			s.Errors += run.Errors
			s.Non2xx += run.Non2xx
			for _, ref := range refs {
				if other, ok := byRep[run.Rep][ref]; ok && other.RPS > 0 {
					ratios[ref] = append(ratios[ref], run.RPS/other.RPS)
					if other.P99us > 0 {
						p99ratios[ref] = append(p99ratios[ref], run.P99us/other.P99us)
					}
				}
			}
		}
		if s.N == 0 {
			continue
		}
		s.RPS, s.P50us, s.P99us, s.P999us = median(rps), median(p50), median(p99), median(p999)
		s.ProxyCPUus, s.UpCPUus, s.LoadCPUPct = median(cpu), median(up), median(load)
		for ref, xs := range ratios {
			s.Ratio[ref] = median(xs)
		}
		for ref, xs := range p99ratios {
			s.P99Ratio[ref] = median(xs)
		}
		out = append(out, s)
	}
	return out
}

func fmtRatio(m map[string]float64, ref string) string {
	v, ok := m[ref]
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%.2f", v)
}

func fmtUs(us float64) string {
	switch {
	case math.IsNaN(us):
		return "–"
	case us >= 10000:
		return fmt.Sprintf("%.1f ms", us/1000)
	case us >= 1000:
		return fmt.Sprintf("%.2f ms", us/1000)
	default:
		return fmt.Sprintf("%.0f µs", us)
	}
}

// Table writes the main comparison as a Markdown table (also readable as
// plain text in a terminal).
func (r *Results) Table(w io.Writer) {
	sums := r.Summarize()
	hdr := []string{"target", "req/s", "p50", "p99", "p99.9", "proxy CPU µs/req", "peak RSS", "errors / non-2xx"}
	for _, ref := range refs {
		hdr = append(hdr, "× "+ref)
	}
	fmt.Fprintln(w, "| "+strings.Join(hdr, " | ")+" |")
	fmt.Fprintln(w, "|"+strings.Repeat("---|", len(hdr)))
	for _, s := range sums {
		row := []string{
			s.Target,
			fmt.Sprintf("%.0f", s.RPS),
			fmtUs(s.P50us), fmtUs(s.P99us), fmtUs(s.P999us),
			fmt.Sprintf("%.1f", s.ProxyCPUus),
			fmt.Sprintf("%.1f MiB", float64(s.RSSKiB)/1024),
			fmt.Sprintf("%d / %d", s.Errors, s.Non2xx),
		}
		for _, ref := range refs {
			row = append(row, fmtRatio(s.Ratio, ref))
		}
		fmt.Fprintln(w, "| "+strings.Join(row, " | ")+" |")
	}
	for _, t := range r.Targets {
		if t.Skipped != "" {
			fmt.Fprintf(w, "\n%s: not measured: %s\n", t.Name, t.Skipped)
		}
	}
}

// LoadTable writes handshake or open-loop results, one row per target with
// medians over its runs.
func LoadTable(w io.Writer, runs []LoadRun, perSecondLabel string) {
	groups := map[string][]LoadRun{}
	var names []string
	for _, run := range runs {
		if _, ok := groups[run.Target]; !ok {
			names = append(names, run.Target)
		}
		groups[run.Target] = append(groups[run.Target], run)
	}
	fmt.Fprintf(w, "| target | %s | p50 | p99 | p99.9 | proxy CPU µs/req | load-gen CPU | errors / non-2xx / late |\n", perSecondLabel)
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, name := range names {
		g := groups[name]
		col := func(f func(LoadRun) float64) float64 {
			xs := make([]float64, len(g))
			for i, run := range g {
				xs[i] = f(run)
			}
			return median(xs)
		}
		var errs, non, late int64
		for _, run := range g {
			errs += run.Errors
			non += run.Non2xx
			late += run.Dropped
		}
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %.1f | %.0f %% | %d / %d / %d |\n", name,
			col(func(r LoadRun) float64 { return r.PerSecond }),
			fmtUs(col(func(r LoadRun) float64 { return r.P50us })),
			fmtUs(col(func(r LoadRun) float64 { return r.P99us })),
			fmtUs(col(func(r LoadRun) float64 { return r.P999us })),
			col(func(r LoadRun) float64 { return r.ProxyCPUus }),
			col(func(r LoadRun) float64 { return r.LoadCPUPct }),
			errs, non, late)
	}
}

// levels returns the open-loop levels in the order they ran.
func (r *Results) levels() []string {
	var out []string
	for _, run := range r.OpenLoop {
		if !slices.Contains(out, run.Level) {
			out = append(out, run.Level)
		}
	}
	return out
}

// atLevel returns the open-loop runs of one level and its rate.
func (r *Results) atLevel(level string) ([]LoadRun, float64) {
	var out []LoadRun
	rate := 0.0
	for _, run := range r.OpenLoop {
		if run.Level == level {
			out = append(out, run)
			rate = run.Rate
		}
	}
	return out, rate
}

// failures lists every measurement with errors or non-2xx answers.
func (r *Results) failures() []string {
	var out []string
	for _, run := range r.Runs {
		if run.Errors > 0 || run.Non2xx > 0 {
			out = append(out, fmt.Sprintf("%s rep %d: %d errors, %d non-2xx", run.Target, run.Rep, run.Errors, run.Non2xx))
		}
	}
	for _, group := range [][]LoadRun{r.Handshakes, r.OpenLoop} {
		for _, run := range group {
			if run.Errors > 0 || run.Non2xx > 0 {
				out = append(out, fmt.Sprintf("%s (loadgen rep %d): %d errors, %d non-2xx %s", run.Target, run.Rep, run.Errors, run.Non2xx, run.FirstError))
			}
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp.Compare[string])
	return keys
}
