package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat; it is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procStat reads a process's parent and its user+system CPU time.
func procStat(pid int) (ppid int, cpu time.Duration, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ppid, _ = strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ppid, time.Duration(ut+st) * time.Second / clockTicks, nil
}

// tree returns pid and all its descendants (nginx's workers, for instance).
func tree(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, _, err := procStat(p); err == nil {
			children[pp] = append(children[pp], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// treeCPU is the CPU time used so far by pid and its descendants.
func treeCPU(pid int) time.Duration {
	var total time.Duration
	for _, p := range tree(pid) {
		if _, cpu, err := procStat(p); err == nil {
			total += cpu
		}
	}
	return total
}

// treeHWM is the sum of the peak resident set sizes (VmHWM) of pid and its
// descendants, in KiB.
func treeHWM(pid int) int64 {
	var total int64
	for _, p := range tree(pid) {
		f, err := os.Open(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				total += n
			}
		}
		f.Close()
	}
	return total
}

// wrkScript makes wrk print its figures as one JSON line, including the
// p99.9 that --latency does not show.
const wrkScript = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCHJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50":%.1f,"p99":%.1f,"p999":%.1f,"max":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
`

// wrkPost makes wrk send a small JSON POST, the request an audit log
// records (GETs are not state-changing and are not audited).
const wrkPost = `wrk.method = "POST"
wrk.body = '{"order":"7f3c9a2e","items":[1,2,3],"note":"bench"}'
wrk.headers["Content-Type"] = "application/json"
` + wrkScript

type wrkOut struct {
	Requests   int64   `json:"requests"`
	DurationUs int64   `json:"duration_us"`
	Connect    int64   `json:"connect"`
	Read       int64   `json:"read"`
	Write      int64   `json:"write"`
	Status     int64   `json:"status"`
	Timeout    int64   `json:"timeout"`
	P50        float64 `json:"p50"`
	P99        float64 `json:"p99"`
	P999       float64 `json:"p999"`
	Max        float64 `json:"max"`
}

// loadCmd runs a load generator pinned to the load CPUs and returns its
// stdout and its CPU use as a share of one core over the wall time.
func (e *env) loadCmd(ctx context.Context, name string, args ...string) (out []byte, cpuPct float64, err error) {
	full := append([]string{"-c", e.loadCPUs, name}, args...)
	cmd := exec.CommandContext(ctx, "taskset", full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return nil, 0, fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	wall := time.Since(start)
	used := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return stdout.Bytes(), 100 * used.Seconds() / wall.Seconds(), nil
}

// wrk runs one closed-loop measurement of url; with post set it sends
// POSTs instead of GETs.
func (e *env) wrk(ctx context.Context, url, key string, post bool, d time.Duration) (wrkOut, float64, error) {
	script := "report.lua"
	if post {
		script = "post.lua"
	}
	secs := max(1, int(d.Round(time.Second).Seconds())) // wrk takes whole seconds
	args := []string{"-t", strconv.Itoa(e.threads), "-c", strconv.Itoa(e.conns),
		"-d", fmt.Sprintf("%ds", secs), "--timeout", "5s",
		"-s", filepath.Join(e.dir, script), "-H", "X-API-Key: " + key, url}
	out, pct, err := e.loadCmd(ctx, "wrk", args...)
	if err != nil {
		return wrkOut{}, 0, err
	}
	for _, line := range strings.Split(string(out), "\n") {
		if js, ok := strings.CutPrefix(line, "BENCHJSON "); ok {
			var w wrkOut
			if err := json.Unmarshal([]byte(js), &w); err != nil {
				return wrkOut{}, 0, fmt.Errorf("wrk output: %w", err)
			}
			if w.Requests == 0 {
				return wrkOut{}, 0, fmt.Errorf("wrk completed no request: %s", out)
			}
			return w, pct, nil
		}
	}
	return wrkOut{}, 0, fmt.Errorf("wrk printed no result: %s", out)
}

// loadgenResult mirrors loadgen's JSON.
type loadgenResult struct {
	PerSecond  float64 `json:"per_second"`
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	Non2xx     int64   `json:"non_2xx"`
	Dropped    int64   `json:"dropped"`
	Warmup     int64   `json:"warmup_requests"`
	P50us      float64 `json:"p50_us"`
	P99us      float64 `json:"p99_us"`
	P999us     float64 `json:"p999_us"`
	FirstError string  `json:"first_error"`
}

func (e *env) loadgen(ctx context.Context, key string, args ...string) (loadgenResult, float64, error) {
	args = append(args, "-H", "X-API-Key: "+key)
	out, pct, err := e.loadCmd(ctx, e.bin("loadgen"), args...)
	if err != nil {
		return loadgenResult{}, 0, err
	}
	var r loadgenResult
	if err := json.Unmarshal(out, &r); err != nil {
		return loadgenResult{}, 0, fmt.Errorf("loadgen output: %w", err)
	}
	return r, pct, nil
}
