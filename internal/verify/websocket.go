package verify

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

var wsSent = []string{"Upgrade", "Connection", "Sec-WebSocket-Version"}

// upgrade sends a WebSocket opening handshake for rawURL.
func (r *runner) upgrade(ctx context.Context, s *session, rawURL string, keyed bool) *exchange {
	key := make([]byte, 16)
	_, _ = io.ReadFull(r.opts.Rand, key)
	return s.request(ctx, http.MethodGet, rawURL, keyed, map[string]string{
		"Connection":            "Upgrade",
		"Upgrade":               "websocket",
		"Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key":     base64.StdEncoding.EncodeToString(key),
	})
}

// wsRefusal classifies the answer to an upgrade that must be refused.
func wsRefusal(ex *exchange) Status {
	switch {
	case ex.err != nil:
		return StatusWarn
	case ex.status == http.StatusSwitchingProtocols:
		return StatusFail
	case ex.status == http.StatusNotFound || ex.status >= 500 || ex.status < 400:
		return StatusWarn
	}
	return StatusPass
}

func withQuery(u, q string) string {
	if strings.Contains(u, "?") {
		return u + "&" + q
	}
	return u + "?" + q
}

func wsChecks(ctx context.Context, r *runner) []Result {
	if len(r.opts.WSPaths) == 0 {
		return r.skipAll("no WebSocket paths given (--ws PATH or routes in the config)", defWSNoTicket, defWSQueryKey, defWSReplay)
	}
	var out []Result

	s := r.session(defWSNoTicket)
	worst, msgs := StatusPass, []string(nil)
	for _, p := range r.opts.WSPaths {
		ex := r.upgrade(ctx, s, r.resolve(p), false)
		s.noteEx(ex, wsSent, 120, "Upgrade", "Sec-WebSocket-Accept")
		st := wsRefusal(ex)
		if st != StatusPass {
			msgs = append(msgs, fmt.Sprintf("%s answered %s", p, statusOrErr(ex)))
		}
		worst = worse(worst, st)
	}
	out = append(out, conclude(s, worst, msgs, "every upgrade without a ticket was refused"))

	s = r.session(defWSQueryKey)
	replay := r.session(defWSReplay)
	switch {
	case r.opts.Key == "":
		reason := "no key given (--key-file)"
		return append(out, s.skip("%s", reason), replay.skip("%s", reason))
	case !r.base.trustedOK:
		reason := "the certificate is not trusted, so the key is withheld (use --ca-file, or --insecure for a self-signed target)"
		return append(out, s.skip("%s", reason), replay.skip("%s", reason))
	}
	worst, msgs = StatusPass, nil
	k := url.QueryEscape(r.opts.Key)
	for _, p := range r.opts.WSPaths {
		ex := r.upgrade(ctx, s, withQuery(r.resolve(p), "api_key="+k+"&token="+k+"&key="+k), true)
		s.noteEx(ex, wsSent, 120, "Upgrade")
		st := wsRefusal(ex)
		if st != StatusPass {
			msgs = append(msgs, fmt.Sprintf("%s answered %s", p, statusOrErr(ex)))
		}
		worst = worse(worst, st)
	}
	out = append(out, conclude(s, worst, msgs, "every upgrade with the key in the query was refused"))
	return append(out, r.ticketReplay(ctx, replay))
}

// ticketReplay gets a ticket, uses it once, and uses it again.
func (r *runner) ticketReplay(ctx context.Context, s *session) Result {
	req, err := r.newRequest(ctx, http.MethodPost, r.resolve(r.opts.WSTicketPath), nil)
	if err != nil {
		return s.warn("%v", err)
	}
	r.setKey(req.Header, r.opts.Key)
	tex := s.do(req, true)
	s.note(r.describe(tex, "Authorization", "X-API-Key"), redactTicket(tex.answer(0, "Content-Type")))
	if tex.err != nil {
		return s.warn("ticket request failed: %v", tex.err)
	}
	if tex.status == http.StatusNotFound || tex.status == http.StatusMethodNotAllowed {
		return s.skip("no ticket endpoint at %s (%d); set the ticket path to test replay", r.opts.WSTicketPath, tex.status)
	}
	var body struct {
		Ticket string `json:"ticket"`
	}
	if tex.status < 200 || tex.status > 299 || json.Unmarshal(tex.body, &body) != nil || body.Ticket == "" {
		return s.warn("the ticket endpoint answered %d without a {\"ticket\": …} body", tex.status)
	}
	u := withQuery(r.resolve(r.opts.WSPaths[0]), "ticket="+url.QueryEscape(body.Ticket))
	first := r.upgrade(ctx, s, u, false)
	s.note(strings.ReplaceAll(r.describe(first, wsSent...), url.QueryEscape(body.Ticket), "<ticket>")+" (first use)", first.answer(0, "Upgrade"))
	if first.err != nil || first.status != http.StatusSwitchingProtocols {
		return s.warn("a fresh ticket was not accepted (%s), so replay cannot be judged", statusOrErr(first))
	}
	second := r.upgrade(ctx, s, u, false)
	s.note(strings.ReplaceAll(r.describe(second, wsSent...), url.QueryEscape(body.Ticket), "<ticket>")+" (second use)", second.answer(120, "Upgrade"))
	if st := wsRefusal(second); st != StatusPass {
		if second.status == http.StatusSwitchingProtocols {
			return s.fail("the same ticket opened a second connection: tickets can be replayed")
		}
		return s.warn("the replayed ticket got %s", statusOrErr(second))
	}
	return s.pass("the ticket worked once and was refused the second time (%d)", second.status)
}

func redactTicket(s string) string {
	if i := strings.Index(s, `"ticket"`); i >= 0 {
		return s[:i] + `"ticket": "<ticket>"…`
	}
	return s
}
