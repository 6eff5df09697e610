// Command harness runs scripts/bench's measurements and writes its report.
//
//	harness run -bin DIR -out results.json [-quick] [-reps N] [-d 10s] ...
//	harness report -in results.json -md docs/BENCHMARKS.md -png docs/bench
//
// run starts the shared upstream and every target on loopback (servers pinned
// to -proxy-cpus, load generators to -load-cpus), checks each answers as
// configured, measures them with wrk in a shuffled order per repetition,
// then counts TLS handshakes per second and runs an open-loop fixed-rate
// test with bench/cmd/loadgen. It saves the raw figures as JSON and prints
// the table. report turns that JSON into Markdown and PNG plots.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: harness run|report [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:])
	case "report":
		err = reportCmd(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (run or report)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(1)
	}
}

type runFlags struct {
	binDir, out, workDir   string
	quick                  bool
	reps                   int
	duration, warmup       time.Duration
	conns, threads         int
	proxyCPUs, loadCPUs    string
	targets                string
	seed                   int64
	hsReps, olReps, hsConn int
	command                string
	profile                bool
}

func runCmd(args []string) error {
	var f runFlags
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.StringVar(&f.binDir, "bin", "", "directory holding rampart, upstream, floor and loadgen")
	fs.StringVar(&f.out, "out", "", "write the results JSON here")
	fs.StringVar(&f.workDir, "work", "", "work directory for configs and logs (default: a new temporary one)")
	fs.BoolVar(&f.quick, "quick", false, "one repetition of short runs, no extra targets")
	fs.IntVar(&f.reps, "reps", 5, "repetitions of the closed-loop runs")
	fs.DurationVar(&f.duration, "d", 10*time.Second, "length of each measured run")
	fs.DurationVar(&f.warmup, "warmup", 2*time.Second, "unmeasured run before each measured one")
	fs.IntVar(&f.conns, "c", 64, "wrk connections")
	fs.IntVar(&f.threads, "t", 1, "wrk threads")
	fs.StringVar(&f.proxyCPUs, "proxy-cpus", "0", "taskset CPU list for the proxies, the upstream and Redis")
	fs.StringVar(&f.loadCPUs, "load-cpus", "1", "taskset CPU list for wrk and loadgen")
	fs.StringVar(&f.targets, "targets", "", "comma-separated targets (default: all; extra ones only in full runs)")
	fs.Int64Var(&f.seed, "seed", 0, "shuffle seed (default: from the clock; recorded in the results)")
	fs.IntVar(&f.hsReps, "handshake-reps", 3, "repetitions of the handshake runs")
	fs.IntVar(&f.olReps, "open-loop-reps", 2, "repetitions of the open-loop runs")
	fs.IntVar(&f.hsConn, "handshake-c", 32, "concurrent connections in the handshake runs")
	fs.StringVar(&f.command, "command", "", "the command line to record in the results")
	fs.BoolVar(&f.profile, "profile", false, "after the measurements, take a CPU profile of each Go target under the same load (rampart through a development-mode twin with pprof)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.binDir == "" {
		return errors.New("-bin is required")
	}
	if f.quick {
		f.reps, f.duration, f.warmup, f.hsReps, f.olReps = 1, 3*time.Second, time.Second, 1, 1
	}
	if f.seed == 0 {
		f.seed = time.Now().UnixNano()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, f)
	if res != nil && f.out != "" {
		if werr := writeJSON(f.out, res); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	if res != nil && len(res.Runs) > 0 {
		fmt.Println()
		res.Table(os.Stdout)
		if len(res.Handshakes) > 0 {
			fmt.Println("\nNew TLS connection per request:")
			LoadTable(os.Stdout, res.Handshakes, "handshakes/s")
		}
		for _, lv := range res.levels() {
			runs, rate := res.atLevel(lv)
			fmt.Printf("\nOpen loop at %.0f req/s (50 %% of %s):\n", rate, lv)
			LoadTable(os.Stdout, runs, "req/s")
		}
		if fails := res.failures(); len(fails) > 0 {
			fmt.Println("\nFAILED: errors or non-2xx answers under load:")
			for _, s := range fails {
				fmt.Println("  " + s)
			}
			err = errors.Join(err, errors.New("errors or non-2xx answers under load"))
		}
	}
	return err
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "==> "+format+"\n", a...)
}

func run(ctx context.Context, f runFlags) (*Results, error) {
	dir := f.workDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "rampart-bench-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	logf("work directory %s (configs and server logs)", dir)
	e := &env{dir: dir, binDir: f.binDir, proxyCPUs: f.proxyCPUs, loadCPUs: f.loadCPUs,
		conns: f.conns, threads: f.threads, profile: f.profile}
	defer e.stopAll()

	res := &Results{
		Date: time.Now().UTC().Format(time.RFC3339), Command: f.command, Quick: f.quick,
		Reps: f.reps, DurationS: f.duration.Seconds(), WarmupS: f.warmup.Seconds(),
		Conns: f.conns, Threads: f.threads, ProxyCPUs: f.proxyCPUs, LoadCPUs: f.loadCPUs,
		Seed: f.seed, Machine: machine(), Versions: versions(f.binDir), HSConns: f.hsConn,
	}
	if _, err := e.write("report.lua", wrkScript); err != nil {
		return nil, err
	}
	if _, err := e.write("post.lua", wrkPost); err != nil {
		return nil, err
	}
	if err := e.makeCert(); err != nil {
		return nil, err
	}
	var keyBytes [24]byte
	_, _ = rand.Read(keyBytes[:])
	e.apiKey = "bench_" + hex.EncodeToString(keyBytes[:])

	// Select targets.
	var want map[string]bool
	if f.targets != "" {
		want = map[string]bool{}
		for _, n := range strings.Split(f.targets, ",") {
			want[strings.TrimSpace(n)] = true
		}
	}
	var selected []target
	for _, t := range allTargets() {
		if want != nil && !want[t.name] || want == nil && t.extra && f.quick {
			continue
		}
		selected = append(selected, t)
		delete(want, t.name)
	}
	for n := range want {
		return nil, fmt.Errorf("unknown target %q", n)
	}

	// The full-stack key is created first: every target is sent it.
	var fullErr error
	if slices.ContainsFunc(selected, func(t target) bool { return t.auth && strings.HasPrefix(t.name, "rampart") }) {
		if _, _, _, fullErr = e.fullStack(); fullErr != nil {
			logf("full stack unavailable: %v", fullErr)
		}
	}

	if err := e.startUpstream(ctx); err != nil {
		return nil, err
	}
	var live []target
	urls := map[string]string{}
	pids := map[string]int{}
	profs := map[string]*profSource{}
	keys := map[string]string{}
	for _, t := range selected {
		info := TargetInfo{Name: t.name, Description: t.desc}
		var st started
		var err error
		if fullErr != nil && t.auth && strings.HasPrefix(t.name, "rampart") {
			err = fullErr
		} else {
			logf("starting %s", t.name)
			st, err = t.start(ctx, e)
			if err != nil && !t.optional && ctx.Err() == nil {
				// A free port can be taken between our probe and the
				// server's bind; one more try with new ports.
				logf("%s did not start (%v); retrying once", t.name, err)
				st, err = t.start(ctx, e)
			}
			// The key is thrown away with the run, but a committed report
			// must not carry anything a secret scanner flags.
			info.Config = strings.ReplaceAll(st.config, e.apiKey, "<the run's API key>")
		}
		if st.key == "" {
			st.key = e.apiKey
		}
		if st.prof != nil {
			st.prof.key = st.key
		}
		if err == nil {
			info.TLS, info.Headers, err = e.preflight(t, st.url, st.key)
		}
		if err != nil {
			if !t.optional {
				return res, fmt.Errorf("%s: %w", t.name, err)
			}
			info.Skipped = err.Error()
			logf("SKIPPING %s: %v", t.name, err)
		} else {
			live = append(live, t)
			urls[t.name], pids[t.name], profs[t.name], keys[t.name] = st.url, st.pid, st.prof, st.key
		}
		res.Targets = append(res.Targets, info)
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}

	// Closed loop, interleaved in a shuffled order per repetition.
	rng := mrand.New(mrand.NewPCG(uint64(f.seed), 0))
	for rep := 1; rep <= f.reps; rep++ {
		order := slices.Clone(live)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		var names []string
		for _, t := range order {
			names = append(names, t.name)
		}
		res.Order = append(res.Order, names)
		for _, t := range order {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			run, err := e.measure(ctx, t, urls[t.name], keys[t.name], pids[t.name], rep, f)
			if err != nil {
				return res, fmt.Errorf("%s rep %d: %w", t.name, rep, err)
			}
			logf("rep %d/%d %-24s %8.0f req/s  p99 %s  cpu %.1f µs/req  errors %d non-2xx %d",
				rep, f.reps, t.name, run.RPS, fmtUs(run.P99us), run.ProxyCPUus, run.Errors, run.Non2xx)
			res.Runs = append(res.Runs, run)
		}
	}
	for i := range res.Targets {
		if pid, ok := pids[res.Targets[i].Name]; ok {
			res.Targets[i].RSSKiB = treeHWM(pid)
		}
	}

	// Where the time goes: a CPU profile of each Go target under the same
	// closed-loop load, after the measurements so it perturbs none of them.
	for i, info := range res.Targets {
		src := profs[info.Name]
		if src == nil || ctx.Err() != nil {
			continue
		}
		top, err := e.takeProfile(ctx, info.Name, src, live, f)
		if err != nil {
			logf("profile of %s: %v", info.Name, err)
			continue
		}
		res.Targets[i].Profile = top
	}

	// New TLS connection per request: rampart against nginx (and the floor).
	hsD := f.duration
	if f.quick {
		hsD = 2 * time.Second
	}
	hsTargets := presentOf(live, "nginx", "floor", "rampart-headers")
	for rep := 1; rep <= f.hsReps; rep++ {
		order := slices.Clone(hsTargets)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, name := range order {
			before := treeCPU(pids[name])
			r, pct, err := e.loadgen(ctx, keys[name], "-mode", "handshake", "-url", urls[name], "-c", fmt.Sprint(f.hsConn),
				"-d", hsD.String(), "-cacert", e.certFile)
			if err != nil {
				return res, fmt.Errorf("handshakes %s: %w", name, err)
			}
			lr := loadRun(name, rep, r, pct, treeCPU(pids[name])-before)
			logf("handshakes rep %d %-20s %8.0f /s  cpu %.1f µs each  errors %d", rep, name, lr.PerSecond, lr.ProxyCPUus, lr.Errors)
			res.Handshakes = append(res.Handshakes, lr)
		}
	}

	// Open loop at half of nginx's capacity (the level, which can
	// overload the slower targets) and at half of the Go floor's (below
	// every Go target's capacity).
	sums := res.Summarize()
	type level struct {
		name string
		rate float64
	}
	var levels []level
	for _, ref := range []string{"nginx", "floor"} {
		for _, s := range sums {
			if s.Target == ref && s.RPS > 0 {
				levels = append(levels, level{ref, s.RPS / 2})
			}
		}
	}
	olD := f.duration
	if f.quick {
		olD = 2 * time.Second
	}
	var olTargets []string
	for _, t := range live {
		if t.name != "direct" && !t.extra {
			olTargets = append(olTargets, t.name)
		}
	}
	for _, lv := range levels {
		for rep := 1; rep <= f.olReps; rep++ {
			order := slices.Clone(olTargets)
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			for _, name := range order {
				before := treeCPU(pids[name])
				r, pct, err := e.loadgen(ctx, keys[name], "-mode", "rate", "-url", urls[name], "-c", fmt.Sprint(f.conns),
					"-rate", fmt.Sprintf("%.0f", lv.rate), "-d", olD.String(), "-warmup", "500ms", "-cacert", e.certFile)
				if err != nil {
					return res, fmt.Errorf("open loop %s: %w", name, err)
				}
				lr := loadRun(name, rep, r, pct, treeCPU(pids[name])-before)
				lr.Level, lr.Rate = lv.name, lv.rate
				logf("open loop (1/2 %s) rep %d %-20s %8.0f req/s  p99 %s  errors %d late %d", lv.name, rep, name, lr.PerSecond, fmtUs(lr.P99us), lr.Errors, lr.Dropped)
				res.OpenLoop = append(res.OpenLoop, lr)
			}
		}
	}
	res.Machine.LoadAfter = loadAvg()
	return res, nil
}

// takeProfile loads src.url with wrk and fetches a CPU profile meanwhile,
// then returns the heaviest functions by cumulative time.
func (e *env) takeProfile(ctx context.Context, name string, src *profSource, live []target, f runFlags) (string, error) {
	var t target
	for _, l := range live {
		if l.name == name {
			t = l
		}
	}
	secs := max(3, min(10, int(f.duration.Seconds())))
	done := make(chan error, 1)
	go func() {
		_, _, err := e.wrk(ctx, src.url, src.key, t.post, time.Duration(secs+2)*time.Second)
		done <- err
	}()
	time.Sleep(time.Second)
	file := filepath.Join(e.dir, name+".pprof")
	if err := fetch(ctx, fmt.Sprintf("%s?seconds=%d", src.pprof, secs), file); err != nil {
		<-done
		return "", err
	}
	if err := <-done; err != nil {
		return "", err
	}
	logf("profiled %s: %s", name, file)
	// Two views: where the CPU is spent (flat), and what each of the
	// project's own layers costs including what it calls (cumulative).
	var b strings.Builder
	for _, view := range []struct {
		title string
		args  []string
	}{
		{"heaviest functions (flat)", []string{"-top", "-nodecount=20"}},
		{"main and rampart packages, cumulative", []string{"-top", "-cum", "-nodecount=25", "-show=^(main|github.com/rampart-security)"}},
	} {
		args := append([]string{"tool", "pprof"}, view.args...)
		out, err := exec.CommandContext(ctx, "go", append(args, src.bin, file)...).Output()
		if err != nil {
			return "", fmt.Errorf("go tool pprof: %w", err)
		}
		fmt.Fprintf(&b, "# %s\n%s\n", view.title, out)
	}
	return b.String(), nil
}

// fetch saves the body of a GET of url into file.
func fetch(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d: %s", url, resp.StatusCode, body)
	}
	return os.WriteFile(file, body, 0o600)
}

func presentOf(live []target, names ...string) []string {
	var out []string
	for _, n := range names {
		if slices.ContainsFunc(live, func(t target) bool { return t.name == n }) {
			out = append(out, n)
		}
	}
	return out
}

// loadRun converts a loadgen result. The CPU delta includes the warm-up
// requests, so it is divided by every request sent, not just the measured.
func loadRun(name string, rep int, r loadgenResult, pct float64, cpu time.Duration) LoadRun {
	lr := LoadRun{Target: name, Rep: rep, PerSecond: r.PerSecond, Requests: r.Requests,
		P50us: r.P50us, P99us: r.P99us, P999us: r.P999us, Errors: r.Errors, Non2xx: r.Non2xx,
		Dropped: r.Dropped, LoadCPUPct: pct, FirstError: r.FirstError}
	if n := r.Requests + r.Warmup; n > 0 {
		lr.ProxyCPUus = float64(cpu.Microseconds()) / float64(n)
	}
	return lr
}

// measure runs an unmeasured warm-up, then one measured wrk run, and reads
// the proxy's and the upstream's CPU time around it.
func (e *env) measure(ctx context.Context, t target, url, key string, pid, rep int, f runFlags) (Run, error) {
	name := t.name
	if f.warmup > 0 {
		if _, _, err := e.wrk(ctx, url, key, t.post, f.warmup); err != nil {
			return Run{}, err
		}
	}
	p0, u0 := treeCPU(pid), treeCPU(e.upstreamPID)
	start := time.Now()
	w, pct, err := e.wrk(ctx, url, key, t.post, f.duration)
	if err != nil {
		return Run{}, err
	}
	wall := time.Since(start)
	p1, u1 := treeCPU(pid), treeCPU(e.upstreamPID)
	run := Run{
		Rep: rep, Target: name, Requests: w.Requests,
		P50us: w.P50, P99us: w.P99, P999us: w.P999, MaxUs: w.Max,
		Errors: w.Connect + w.Read + w.Write + w.Timeout, Non2xx: w.Status,
		LoadCPUPct: pct,
	}
	if w.DurationUs > 0 {
		run.RPS = float64(w.Requests) / (float64(w.DurationUs) / 1e6)
	}
	if w.Requests > 0 {
		proxy := p1 - p0
		if pid == e.upstreamPID {
			proxy = 0 // direct: the upstream is all there is
		}
		run.ProxyCPUus = float64(proxy.Microseconds()) / float64(w.Requests)
		run.UpCPUus = float64((u1 - u0).Microseconds()) / float64(w.Requests)
		total := proxy + (u1 - u0)
		run.ProxyCPUPct = 100 * total.Seconds() / wall.Seconds()
	}
	return run, nil
}

func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), LoadBefore: loadAvg()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.TrimPrefix(strings.Split(string(data), "\n")[0], "MemTotal:"), "%d", &kb)
		m.MemoryGiB = int((kb + 512*1024) / (1024 * 1024))
	}
	return m
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func versions(binDir string) map[string]string {
	v := map[string]string{"go": runtime.Version()}
	first := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil && len(out) == 0 {
			return "not found"
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return strings.TrimSpace(line)
	}
	v["nginx"] = strings.TrimPrefix(first("nginx", "-v"), "nginx version: ")
	v["haproxy"] = first("haproxy", "-v")
	v["caddy"] = first("caddy", "version")
	v["wrk"] = first("wrk", "-v")
	v["openssl"] = first("openssl", "version")
	v["redis"] = first("redis-server", "--version")
	v["rampart"] = first(filepath.Join(binDir, "rampart"), "version")
	v["commit"] = first("git", "describe", "--always", "--dirty")
	return v
}
