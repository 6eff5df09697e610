package cli

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rampart-security/rampart/internal/config"
	"github.com/rampart-security/rampart/internal/route"
)

func newPolicyCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Print the effective route policy as Markdown for API documentation",
		Long: `Prints one row per route of the configuration: path, methods, how a caller
authenticates, the permission needed, the body limit and every rate limit
that applies, plus the endpoints Rampart serves itself (WebSocket tickets,
login). Paste it into the API documentation so clients know the limits
before they meet a 429.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(path, cmd.ErrOrStderr())
			if err != nil {
				return withExitCode(2, err)
			}
			return writePolicy(cmd.OutOrStdout(), cfg)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", defaultConfigPath(), "configuration file (env RAMPART_CONFIG)")
	return cmd
}

// writePolicy renders the route policy of a validated config.
func writePolicy(w io.Writer, cfg config.Config) error {
	rules, err := cfg.LimitRules()
	if err != nil {
		return err
	}
	pre, hasPre, err := cfg.PreAuthLimit()
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("| route | path | methods | authentication | permission | body limit | rate limits |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, r := range cfg.Routes {
		methods := r.Methods
		if len(methods) == 0 {
			methods = []string{"any"}
		}
		authn, perm := policyAuth(r)
		var limits []string
		if hasPre && r.Auth != "" && r.Auth != route.AuthNone && !r.WebSocket {
			limits = append(limits, fmt.Sprintf("%s per client IP before authentication", pre.Limit))
		}
		sample := strings.TrimSuffix(r.Path, "/*")
		if sample == "" {
			sample = "/"
		}
		anonymous := r.Auth == "" || r.Auth == route.AuthNone
		for _, lr := range rules {
			if anonymous && (lr.Key == "api_key" || lr.Key == "user") {
				continue // nobody on this route has a key or an account to count
			}
			var applies []string
			for _, m := range probeMethods(r.Methods) {
				if lr.Applies(m, sample) {
					applies = append(applies, m)
				}
			}
			if len(applies) > 0 {
				limits = append(limits, fmt.Sprintf("%s per %s (`%s`%s)", lr.Limit, keyWord(string(lr.Key)), lr.Name, onlyFor(applies, r.Methods)))
			}
		}
		if r.WebSocket {
			ws := cfg.WebSocket
			limits = append(limits, fmt.Sprintf("%d connections per caller, %d in total; messages up to %s", ws.MaxPerPrincipal, ws.MaxTotal, ws.MaxMessageBytes))
			if ws.MessageRate != "" {
				limits = append(limits, ws.MessageRate+" messages per connection")
			}
		}
		body := r.BodyLimit
		if body == 0 {
			body = cfg.Limits.Body
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %s | %s | %s |\n", r.Name, r.Path, strings.Join(methods, ", "),
			authn, perm, body, orDash(strings.Join(limits, "; ")))
	}
	if cfg.NeedsAPIKeys() && hasRoute(cfg, func(r config.Route) bool { return r.WebSocket }) {
		who := "API key"
		if cfg.Identity.Enabled {
			who = "API key or person's access token"
		}
		fmt.Fprintf(&b, "| WebSocket ticket | `%s` | POST | %s | read | - | %s |\n", cfg.WebSocket.TicketPath, who,
			orDash(preText(pre.Limit.String(), hasPre)))
	}
	if cfg.Identity.Enabled {
		l := []string{}
		if cfg.Identity.LoginLimit != "" {
			l = append(l, cfg.Identity.LoginLimit+" per client IP on login, MFA and password reset")
		}
		if hasPre {
			l = append(l, pre.Limit.String()+" per client IP on every /.rampart/ request")
		}
		fmt.Fprintf(&b, "| people | `/.rampart/*` | GET, POST, DELETE | password, TOTP, access token | - | 16KiB | %s |\n", orDash(strings.Join(l, "; ")))
	}
	b.WriteString("\nA limited response carries `RateLimit-Policy`, `RateLimit`, `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`; a refused one is 429 with `Retry-After` and `{\"error\":\"rate_limited\",\"rule\":...,\"retry_after\":...}`.\n")
	_, err = io.WriteString(w, b.String())
	return err
}

func policyAuth(r config.Route) (authn, perm string) {
	switch {
	case r.WebSocket:
		authn = "single-use ticket (`?ticket=`)"
	case r.Auth == route.AuthAPIKey:
		authn = "API key (`Authorization: Bearer` or `X-API-Key`)"
	case r.Auth == route.AuthUser:
		authn = "person's access token"
	case r.Auth == route.AuthAny:
		authn = "API key or person's access token"
	default:
		return "none", "-"
	}
	perm = r.Permission
	if perm == "" || perm == route.PermByMethod {
		perm = "read for GET/HEAD/OPTIONS, write otherwise"
	}
	return authn, perm
}

// probeMethods are the methods a route's limits are worked out for.
func probeMethods(methods []string) []string {
	if len(methods) > 0 {
		return methods
	}
	return []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
}

func onlyFor(applies, routeMethods []string) string {
	if len(applies) == len(probeMethods(routeMethods)) {
		return ""
	}
	return ", " + strings.Join(applies, "/") + " only"
}

func keyWord(k string) string {
	switch k {
	case "api_key":
		return "API key"
	case "ip":
		return "client IP"
	case "subject":
		return "caller"
	}
	return k
}

func hasRoute(cfg config.Config, f func(config.Route) bool) bool {
	for _, r := range cfg.Routes {
		if f(r) {
			return true
		}
	}
	return false
}

func preText(limit string, ok bool) string {
	if !ok {
		return ""
	}
	return limit + " per client IP before authentication"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
