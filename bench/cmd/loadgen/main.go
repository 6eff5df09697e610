// Command loadgen is the benchmark's Go load generator for the two runs wrk
// cannot do:
//
//   - rate: open loop at a fixed request rate over keep-alive connections.
//     Latency is measured from the moment a request was due, not from when a
//     connection was free to send it, so a stalled server is charged for the
//     requests queued behind the stall (the "coordinated omission" that a
//     closed-loop tool like wrk hides).
//   - handshake: every request on a new TLS connection, as many as the
//     connections allow, to count full handshakes per second.
//
// It prints one JSON object on stdout.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Result is what loadgen prints.
type Result struct {
	Mode       string  `json:"mode"`
	URL        string  `json:"url"`
	Conns      int     `json:"conns"`
	Rate       float64 `json:"target_rate,omitempty"`
	Seconds    float64 `json:"seconds"`
	Requests   int64   `json:"requests"`
	PerSecond  float64 `json:"per_second"`
	Errors     int64   `json:"errors"`
	Non2xx     int64   `json:"non_2xx"`
	Dropped    int64   `json:"dropped"` // due but not answered by a second after the run ended
	Warmup     int64   `json:"warmup_requests"`
	P50us      float64 `json:"p50_us"`
	P90us      float64 `json:"p90_us"`
	P99us      float64 `json:"p99_us"`
	P999us     float64 `json:"p999_us"`
	MaxUs      float64 `json:"max_us"`
	FirstError string  `json:"first_error,omitempty"`
}

type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(s string) error { *h = append(*h, s); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run() error {
	mode := flag.String("mode", "rate", "rate (open loop, fixed rate) or handshake (new TLS connection per request)")
	target := flag.String("url", "", "URL to request")
	conns := flag.Int("c", 64, "connections")
	rate := flag.Float64("rate", 1000, "requests per second (rate mode)")
	duration := flag.Duration("d", 10*time.Second, "measured duration")
	warmup := flag.Duration("warmup", time.Second, "unmeasured warm-up before the run (rate mode)")
	caFile := flag.String("cacert", "", "PEM of the CA to trust; empty: skip verification")
	var headers headerList
	flag.Var(&headers, "H", "request header \"Name: value\" (repeatable)")
	flag.Parse()
	if *target == "" {
		return errors.New("-url is required")
	}
	hdr := http.Header{}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return fmt.Errorf("-H %q is not Name: value", h)
		}
		hdr.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	// X25519 and P-256 only, as OpenSSL 3.0 clients (wrk) offer: every server
	// then does the same key exchange, and none pays for a post-quantum
	// hybrid that only some of them support.
	curves := []tls.CurveID{tls.X25519, tls.CurveP256}
	tlsConf := &tls.Config{InsecureSkipVerify: true, CurvePreferences: curves} //nolint:gosec // loopback benchmark against a self-signed certificate when no -cacert
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s holds no certificate", *caFile)
		}
		tlsConf = &tls.Config{RootCAs: pool, CurvePreferences: curves}
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSClientConfig:     tlsConf,
		MaxIdleConns:        *conns,
		MaxIdleConnsPerHost: *conns,
		MaxConnsPerHost:     *conns,
		DisableCompression:  true,
		// HTTP/1.1 only, like wrk and like the proxies' clients in the table.
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	var res Result
	var err error
	switch *mode {
	case "rate":
		res, err = runRate(tr, *target, hdr, *conns, *rate, *warmup, *duration)
	case "handshake":
		tr.DisableKeepAlives = true
		res, err = runHandshake(tr, *target, hdr, *conns, *duration)
	default:
		return fmt.Errorf("-mode %q is not rate or handshake", *mode)
	}
	if err != nil {
		return err
	}
	res.Mode, res.URL, res.Conns = *mode, *target, *conns
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

type outcome struct {
	requests, errors, non2xx atomic.Int64
	mu                       sync.Mutex
	first                    string
}

func (o *outcome) fail(err error) {
	o.errors.Add(1)
	o.mu.Lock()
	if o.first == "" {
		o.first = err.Error()
	}
	o.mu.Unlock()
}

// do sends one request and reads the whole answer.
func do(ctx context.Context, client *http.Client, url string, hdr http.Header, o *outcome) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		o.fail(err)
		return false
	}
	req.Header = hdr.Clone()
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			o.fail(err)
		}
		return false
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		o.fail(err)
		return false
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		o.non2xx.Add(1)
	}
	o.requests.Add(1)
	return true
}

func runRate(tr *http.Transport, url string, hdr http.Header, conns int, rate float64, warmup, duration time.Duration) (Result, error) {
	if rate <= 0 {
		return Result{}, errors.New("-rate must be positive")
	}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	// Open the connections before the clock starts.
	var o outcome
	warmCtx, cancelWarm := context.WithTimeout(context.Background(), warmup+time.Second)
	_ = openLoop(warmCtx, client, url, hdr, conns, rate, warmup, &o, nil)
	cancelWarm()
	warm := o.requests.Load() + o.errors.Load()
	o = outcome{}

	// A server slower than the rate falls further behind for the whole run;
	// what it has not answered a second after the run ends is counted as
	// late instead of being waited for (an overloaded target would
	// otherwise stretch a 10 s run to minutes).
	ctx, cancel := context.WithTimeout(context.Background(), duration+time.Second)
	defer cancel()
	lat := make([][]time.Duration, conns)
	start := time.Now()
	dropped := openLoop(ctx, client, url, hdr, conns, rate, duration, &o, lat)
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	res := summarize(all, &o, elapsed)
	res.Rate, res.Dropped, res.Warmup = rate, dropped, warm
	return res, nil
}

// openLoop sends requests due every 1/rate for d, on conns workers, and
// records each latency from its due time into lat[worker] when lat is not nil.
// It returns how many due requests were not completed before ctx ended.
func openLoop(ctx context.Context, client *http.Client, url string, hdr http.Header, conns int, rate float64, d time.Duration, o *outcome, lat [][]time.Duration) int64 {
	total := int64(rate * d.Seconds())
	due := make(chan time.Time, total+1)
	var wg sync.WaitGroup
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range due {
				if ctx.Err() != nil {
					continue
				}
				if do(ctx, client, url, hdr, o) && lat != nil {
					lat[w] = append(lat[w], time.Since(t))
				}
			}
		}()
	}
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	var sent int64
	for sent < total && ctx.Err() == nil {
		now := time.Now()
		should := min(int64(now.Sub(start)/interval)+1, total)
		for ; sent < should; sent++ {
			due <- start.Add(time.Duration(sent) * interval)
		}
		time.Sleep(200 * time.Microsecond)
	}
	close(due)
	wg.Wait()
	return total - o.requests.Load() - o.errors.Load()
}

func runHandshake(tr *http.Transport, url string, hdr http.Header, conns int, duration time.Duration) (Result, error) {
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var o outcome
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	lat := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				t := time.Now()
				if do(ctx, client, url, hdr, &o) {
					lat[w] = append(lat[w], time.Since(t))
				}
			}
		}()
	}
	wg.Wait()
	return summarize(slices.Concat(lat...), &o, time.Since(start)), nil
}

func summarize(lat []time.Duration, o *outcome, elapsed time.Duration) Result {
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := int(p / 100 * float64(len(lat)))
		if i >= len(lat) {
			i = len(lat) - 1
		}
		return float64(lat[i]) / float64(time.Microsecond)
	}
	n := o.requests.Load()
	return Result{
		Seconds:    elapsed.Seconds(),
		Requests:   n,
		PerSecond:  float64(n) / elapsed.Seconds(),
		Errors:     o.errors.Load(),
		Non2xx:     o.non2xx.Load(),
		P50us:      pct(50),
		P90us:      pct(90),
		P99us:      pct(99),
		P999us:     pct(99.9),
		MaxUs:      pct(100),
		FirstError: o.first,
	}
}
