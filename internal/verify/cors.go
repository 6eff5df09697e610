package verify

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// localOrigins are development origins production must not allow.
var localOrigins = []string{"http://localhost", "http://localhost:3000", "http://127.0.0.1", "http://0.0.0.0"}

// originBases returns the target's own origin and the allowed origins,
// deduplicated, as URLs.
func originBases(o *Options) []*url.URL {
	var out []*url.URL
	seen := map[string]bool{}
	add := func(raw string) {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return
		}
		key := strings.ToLower(u.Scheme + "://" + u.Host)
		if seen[key] {
			return
		}
		seen[key] = true
		out = append(out, &url.URL{Scheme: strings.ToLower(u.Scheme), Host: strings.ToLower(u.Host)})
	}
	add(o.Target)
	for _, a := range o.AllowedOrigins {
		add(a)
	}
	return out
}

// hostileOrigins builds the battery: a random domain, null, and for each
// base origin a suffix look-alike, a prefix look-alike, an unexpected
// subdomain and (for https) the http downgrade. label must be a DNS label;
// the count does not depend on it.
func hostileOrigins(o *Options, label string) []string {
	out := []string{"https://" + label + ".example", "null"}
	for _, b := range originBases(o) {
		host, port := b.Hostname(), b.Port()
		withPort := func(h string) string {
			if port == "" {
				return h
			}
			return net.JoinHostPort(h, port)
		}
		if strings.Contains(host, ":") {
			host = "[" + host + "]" // look-alikes of an IPv6 literal stay strings
		}
		out = append(out,
			b.Scheme+"://"+withPort(host+"."+label+".example"),
			b.Scheme+"://"+withPort(label+host),
			b.Scheme+"://"+withPort(label+"."+host))
		if b.Scheme == "https" {
			out = append(out, "http://"+b.Host)
		}
	}
	return out
}

// corsAnswer is what one origin got back.
type corsAnswer struct {
	origin    string
	preflight bool
	ex        *exchange
	allowed   bool // ACAO equals the origin
	wildcard  bool // ACAO is *
	creds     bool // ACAC is true
}

var corsHeaders = []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Methods"}

// corsBattery sends a simple GET and a preflight for every origin.
func (r *runner) corsBattery(ctx context.Context, s *session, origins []string) []corsAnswer {
	var (
		mu  sync.Mutex
		out []corsAnswer
		wg  sync.WaitGroup
	)
	target := r.target.String()
	for _, origin := range origins {
		for _, pre := range []bool{false, true} {
			wg.Go(func() {
				hdr := map[string]string{"Origin": origin}
				method := http.MethodGet
				if pre {
					method = http.MethodOptions
					hdr["Access-Control-Request-Method"] = "PUT"
					hdr["Access-Control-Request-Headers"] = "authorization, content-type"
				}
				ex := s.request(ctx, method, target, false, hdr)
				a := corsAnswer{origin: origin, preflight: pre, ex: ex}
				if ex.err == nil {
					acao := strings.TrimSpace(ex.header.Get("Access-Control-Allow-Origin"))
					a.allowed = strings.EqualFold(acao, origin)
					a.wildcard = acao == "*"
					a.creds = strings.EqualFold(strings.TrimSpace(ex.header.Get("Access-Control-Allow-Credentials")), "true")
				}
				mu.Lock()
				out = append(out, a)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b corsAnswer) int {
		if c := strings.Compare(a.origin, b.origin); c != 0 {
			return c
		}
		if a.preflight == b.preflight {
			return 0
		}
		if a.preflight {
			return 1
		}
		return -1
	})
	return out
}

func (r *runner) noteCORS(s *session, a corsAnswer) {
	sent := []string{"Origin"}
	if a.preflight {
		sent = append(sent, "Access-Control-Request-Method", "Access-Control-Request-Headers")
	}
	s.noteEx(a.ex, sent, 0, corsHeaders...)
}

func kind(a corsAnswer) string {
	if a.preflight {
		return "preflight"
	}
	return "simple request"
}

func randomLabel(rd io.Reader) string {
	b := make([]byte, 4)
	if _, err := io.ReadFull(rd, b); err != nil {
		return "rampart-verify"
	}
	return "rv" + hex.EncodeToString(b)
}

func corsChecks(ctx context.Context, r *runner) []Result {
	var out []Result
	hostile := hostileOrigins(&r.opts, randomLabel(r.opts.Rand))

	s := r.session(defCORSHostile)
	hostileAns := r.corsBattery(ctx, s, hostile)
	var bad []string
	for _, a := range hostileAns {
		if a.allowed {
			r.noteCORS(s, a)
			bad = append(bad, fmt.Sprintf("%s (%s)", a.origin, kind(a)))
		}
	}
	if len(bad) > 0 {
		out = append(out, s.fail("allowed %d hostile origin(s): %s", len(bad), strings.Join(bad, ", ")))
	} else {
		for _, a := range hostileAns[:min(2, len(hostileAns))] {
			r.noteCORS(s, a)
		}
		out = append(out, s.pass("none of %d hostile origins was allowed (simple and preflight)", len(hostile)))
	}

	s = r.session(defCORSLocal)
	localAns := r.corsBattery(ctx, s, localOrigins)
	bad = nil
	for _, a := range localAns {
		if a.allowed {
			r.noteCORS(s, a)
			bad = append(bad, fmt.Sprintf("%s (%s)", a.origin, kind(a)))
		}
	}
	if len(bad) > 0 {
		out = append(out, s.fail("allowed development origin(s): %s", strings.Join(bad, ", ")))
	} else {
		r.noteCORS(s, localAns[0])
		out = append(out, s.pass("none of %s was allowed", strings.Join(localOrigins, ", ")))
	}

	all := append(slices.Clone(hostileAns), localAns...)
	s = r.session(defCORSCreds)
	bad = nil
	for _, a := range all {
		if a.allowed && a.creds {
			r.noteCORS(s, a)
			bad = append(bad, a.origin)
		}
	}
	bad = slices.Compact(bad)
	if len(bad) > 0 {
		out = append(out, s.fail("origin reflected with Access-Control-Allow-Credentials: true for %s: any site can read authenticated responses", strings.Join(bad, ", ")))
	} else {
		out = append(out, s.pass("no foreign origin was allowed with credentials (uses the responses of CORS-001 and CORS-002)"))
	}

	s = r.session(defCORSWildcard)
	wild := false
	base := r.base.https
	if strings.TrimSpace(base.header.Get("Access-Control-Allow-Origin")) == "*" &&
		strings.EqualFold(base.header.Get("Access-Control-Allow-Credentials"), "true") {
		s.noteEx(base, nil, 0, corsHeaders...)
		wild = true
	}
	for _, a := range all {
		if a.wildcard && a.creds {
			r.noteCORS(s, a)
			wild = true
			break
		}
	}
	if wild {
		out = append(out, s.fail("Access-Control-Allow-Origin: * together with Access-Control-Allow-Credentials: true"))
	} else {
		out = append(out, s.pass("no wildcard origin with credentials"))
	}
	return out
}
