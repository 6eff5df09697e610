package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// exposed is a path probed for content that must not be public. match
// looks at the body for proof the content is really there (a bare 200 or a
// catch-all page proves nothing) and returns a description, or "".
type exposed struct {
	path  string
	match func(body []byte) string
}

var (
	envLineRe    = regexp.MustCompile(`(?m)^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=`)
	envSecretRe  = regexp.MustCompile(`(?i)key|secret|password|passwd|token|dsn|database_url`)
	gitHeadRe    = regexp.MustCompile(`^(ref: refs/|[0-9a-f]{40}\s*$)`)
	listingRe    = regexp.MustCompile(`(?i)<title>\s*Index of /|<h1>\s*Index of /|Directory listing for /`)
	goListingRe  = regexp.MustCompile(`^<!doctype html>\s*<meta name="viewport" content="width=device-width">\s*<pre>\s*(<a href="|</pre>)`)
	promMetricRe = regexp.MustCompile(`(?m)^# TYPE \S+ (counter|gauge|histogram|summary|untyped)`)
)

func isHTML(b []byte) bool {
	t := bytes.ToLower(bytes.TrimSpace(b[:min(len(b), 512)]))
	return bytes.HasPrefix(t, []byte("<!doctype html")) || bytes.HasPrefix(t, []byte("<html")) || bytes.Contains(t, []byte("<head"))
}

// matchEnv finds KEY=value lines and returns the variable names only; the
// values are secrets and never reach the report.
func matchEnv(b []byte) string {
	if isHTML(b) {
		return ""
	}
	ms := envLineRe.FindAllSubmatch(b, 20)
	secret := false
	var names []string
	for _, m := range ms {
		names = append(names, string(m[1]))
		secret = secret || envSecretRe.Match(m[1])
	}
	if len(names) >= 2 || (len(names) == 1 && secret) {
		return "variables " + strings.Join(names, ", ") + " (values withheld)"
	}
	return ""
}

func contains(all ...string) func([]byte) string {
	return func(b []byte) string {
		for _, s := range all {
			if !bytes.Contains(b, []byte(s)) {
				return ""
			}
		}
		return fmt.Sprintf("body contains %q", all)
	}
}

func containsAny(any ...string) func([]byte) string {
	return func(b []byte) string {
		for _, s := range any {
			if bytes.Contains(b, []byte(s)) {
				return fmt.Sprintf("body contains %q", s)
			}
		}
		return ""
	}
}

// matchOpenAPI accepts a JSON document with an openapi or swagger version
// and paths.
func matchOpenAPI(b []byte) string {
	var doc struct {
		OpenAPI string          `json:"openapi"`
		Swagger string          `json:"swagger"`
		Paths   json.RawMessage `json:"paths"`
	}
	if json.Unmarshal(b, &doc) != nil || (doc.OpenAPI == "" && doc.Swagger == "") || doc.Paths == nil {
		return ""
	}
	return "OpenAPI document " + doc.OpenAPI + doc.Swagger
}

func matchExpvar(b []byte) string {
	var doc map[string]json.RawMessage
	if json.Unmarshal(b, &doc) != nil {
		return ""
	}
	if _, ok := doc["memstats"]; ok {
		if _, ok := doc["cmdline"]; ok {
			return "expvar JSON with cmdline and memstats"
		}
	}
	return ""
}

var (
	envPaths = []exposed{
		{"/.env", matchEnv}, {"/.env.local", matchEnv}, {"/.env.production", matchEnv},
		{"/.env.prod", matchEnv}, {"/.env.backup", matchEnv}, {"/api/.env", matchEnv},
	}
	gitPaths = []exposed{
		{"/.git/config", contains("[core]", "repositoryformatversion")},
		{"/.git/HEAD", func(b []byte) string {
			if gitHeadRe.Match(bytes.TrimSpace(b)) {
				return fmt.Sprintf("git HEAD %q", bytes.TrimSpace(b[:min(len(b), 60)]))
			}
			return ""
		}},
	}
	debugPaths = []exposed{
		{"/debug/pprof/", containsAny("Types of profiles available", "/debug/pprof/goroutine", "href=\"goroutine?debug=1\"")},
		{"/debug/vars", matchExpvar},
		{"/actuator/env", containsAny("\"propertySources\"", "\"activeProfiles\"")},
	}
	docsPaths = []exposed{
		{"/docs", containsAny("swagger-ui", "SwaggerUIBundle", "redoc")},
		{"/redoc", containsAny("redoc.standalone", "<redoc")},
		{"/openapi.json", matchOpenAPI},
		{"/swagger.json", matchOpenAPI},
		{"/swagger/index.html", containsAny("swagger-ui", "SwaggerUIBundle")},
		{"/swagger-ui.html", containsAny("swagger-ui", "SwaggerUIBundle")},
		{"/v3/api-docs", matchOpenAPI},
	}
	metricsPaths = []exposed{
		{"/metrics", func(b []byte) string {
			if promMetricRe.Match(b) {
				return "Prometheus exposition format (# TYPE lines)"
			}
			return ""
		}},
	}
	statusPaths = []exposed{
		{"/server-status", containsAny("Apache Server Status", "Server uptime", "Active connections:")},
		{"/nginx_status", contains("Active connections:", "server accepts handled requests")},
	}
	listingPaths = []exposed{
		{"/static/", matchListing}, {"/uploads/", matchListing}, {"/files/", matchListing}, {"/backup/", matchListing},
	}
)

func matchListing(b []byte) string {
	if m := listingRe.Find(b); m != nil {
		return fmt.Sprintf("directory listing (%q)", m)
	}
	if goListingRe.Match(b) {
		return "directory listing (Go http.FileServer)"
	}
	return ""
}

func exposureChecks(ctx context.Context, r *runner) []Result {
	groups := []struct {
		def   *checkDef
		paths []exposed
		what  string
	}{
		{defExpEnv, envPaths, ".env files"},
		{defExpGit, gitPaths, ".git files"},
		{defExpDebug, debugPaths, "debug endpoints"},
		{defExpDocs, docsPaths, "API documentation"},
		{defExpMetrics, metricsPaths, "metrics"},
		{defExpStatus, statusPaths, "server status pages"},
		{defExpListing, listingPaths, "directory listings"},
	}
	out := make([]Result, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Go(func() {
			s := r.session(g.def)
			var found []string
			if g.def == defExpListing {
				if d := matchListing(r.base.https.body); d != "" {
					s.noteEx(r.base.https, nil, 0)
					found = append(found, r.target.Path+": "+d)
				}
			}
			for _, p := range g.paths {
				ex := s.get(ctx, p.path, false, nil)
				if ex.err != nil || ex.status < 200 || ex.status > 299 {
					continue
				}
				d := p.match(ex.body)
				if d == "" {
					continue
				}
				body := 200
				if g.def == defExpEnv {
					body = 0 // never copy secrets into the report
				}
				s.note(r.describe(ex), ex.answer(body, "Content-Type")+"\n"+d)
				found = append(found, p.path+": "+d)
			}
			if len(found) > 0 {
				out[i] = s.fail("%s served: %s", g.what, strings.Join(found, "; "))
				return
			}
			s.note(fmt.Sprintf("GET %d paths: %s", len(g.paths), pathList(g.paths)), "no exposed content found")
			out[i] = s.pass("none of %d paths served %s", len(g.paths), g.what)
		})
	}
	wg.Wait()
	return out
}

func pathList(ps []exposed) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.path
	}
	return strings.Join(out, " ")
}
