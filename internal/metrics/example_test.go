package metrics_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-security/rampart/internal/metrics"
	"github.com/rampart-security/rampart/internal/reqinfo"
)

// The middleware sits inside reqinfo and outside the route matcher; it reads
// the route name after the request, never the raw path.
func ExampleMetrics_Middleware() {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		fmt.Println(err)
		return
	}
	matchRoute := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/orders/") {
				reqinfo.From(r.Context()).Route = "orders"
			}
			next.ServeHTTP(w, r)
		})
	}
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reqinfo.From(r.Context()).Route == "" {
			http.NotFound(w, r)
		}
	})
	chain := m.Middleware(matchRoute(upstream))
	withInfo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chain.ServeHTTP(w, r.WithContext(reqinfo.With(r.Context(), &reqinfo.Info{})))
	})

	for _, path := range []string{"/orders/1", "/orders/2", "/wp-admin.php"} {
		withInfo.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil))
	}

	rec := httptest.NewRecorder()
	metrics.Handler(reg).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), metrics.NameRequests) {
			fmt.Println(sc.Text())
		}
	}
	// Output:
	// rampart_http_requests_total{method="GET",route="orders",status_class="2xx"} 2
	// rampart_http_requests_total{method="GET",route="unmatched",status_class="4xx"} 1
}

func ExamplePrometheusRules() {
	t := metrics.DefaultThresholds()
	t.AuthFailuresPerMinute = 20 // from the configuration
	rules, err := metrics.PrometheusRules(t)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, line := range strings.Split(string(rules), "\n") {
		if strings.Contains(line, "rampart_auth_failures_total[") {
			fmt.Println(strings.TrimSpace(line))
		}
	}
	// Output:
	// expr: sum by (job) (rate(rampart_auth_failures_total[2m])) * 60 > 20
}
