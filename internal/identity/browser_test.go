package identity_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/rampart-security/rampart/internal/identity"
)

// chromiumPath finds a Chromium; the test skips without one unless
// RAMPART_TEST_REQUIRE_BROWSER=1.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("RAMPART_TEST_REQUIRE_BROWSER") == "1" {
		t.Fatal("no Chromium found and RAMPART_TEST_REQUIRE_BROWSER=1")
	}
	t.Skip("no Chromium found (apt-get install chromium)")
	return ""
}

// consoleLog collects console errors and log entries, where Chromium
// reports CSP violations.
type consoleLog struct {
	mu    sync.Mutex
	lines []string
}

func (c *consoleLog) listen(ev any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch ev := ev.(type) {
	case *cdplog.EventEntryAdded:
		c.lines = append(c.lines, string(ev.Entry.Level)+" "+string(ev.Entry.Source)+": "+ev.Entry.Text)
	case *runtime.EventConsoleAPICalled:
		for _, a := range ev.Args {
			c.lines = append(c.lines, string(ev.Type)+": "+string(a.Value))
		}
	case *runtime.EventExceptionThrown:
		c.lines = append(c.lines, "exception: "+ev.ExceptionDetails.Text)
	}
}

func (c *consoleLog) cspViolations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, l := range c.lines {
		if strings.Contains(l, "Content Security Policy") || strings.Contains(l, "Refused to") {
			out = append(out, l)
		}
	}
	return out
}

func newChrome(t *testing.T, path string) (context.Context, *consoleLog) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("ignore-certificate-errors", true), // httptest's self-signed certificate
		chromedp.Flag("disable-gpu", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	logs := &consoleLog{}
	if err := chromedp.Listen(ctx, logs.listen); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx, logs
}

// TestBrowserFlow drives the pages in headless Chromium: log in, enrol
// TOTP reading the secret from the page, log out, log in again with a
// computed code, see and revoke another session, and no CSP violation.
func TestBrowserFlow(t *testing.T) {
	path := chromiumPath(t)
	e := newEnv(t, nil)
	e.createUser("alice")
	mux := http.NewServeMux()
	mux.Handle("/.rampart/", e.svc.Handler())
	// The probe proves the CSP detector works: an inline style refused
	// under the same policy must show up in the log.
	mux.HandleFunc("/csp-probe", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'")
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<!DOCTYPE html><html><head><style>body{color:red}</style></head><body>probe</body></html>`))
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)

	// Another session, made through the API, for the revoke step.
	otherAPI := e.login("alice", goodPassword)

	ctx, logs := newChrome(t, path)
	base := srv.URL + "/.rampart/ui/"
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(css(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return v
	}

	do("log in",
		chromedp.Navigate(base+"login"),
		chromedp.SendKeys(css("#username"), "alice"),
		chromedp.SendKeys(css("#password"), goodPassword),
		chromedp.Click(css("#login")),
		chromedp.WaitVisible(css("#enroll")))
	do("start enrolment", chromedp.Click(css("#enroll")), chromedp.WaitVisible(css("#secret")))
	secret := text("#secret")
	qrWidth, err := chromedp.Run(ctx, chromedp.Evaluate[int64](`new Promise((resolve) => {
		const img = document.getElementById("qr");
		if (img.complete) { resolve(img.naturalWidth); return; }
		img.addEventListener("load", () => resolve(img.naturalWidth));
		img.addEventListener("error", () => resolve(0));
	})`, chromedp.EvalAwaitPromise))
	if err != nil || qrWidth != 240 {
		t.Fatalf("QR image not loaded: width %d, %v", qrWidth, err)
	}
	code, err := identity.TOTPCode(secret, e.clock.Now())
	if err != nil {
		t.Fatalf("secret %q from the page: %v", secret, err)
	}
	do("confirm",
		chromedp.SendKeys(css("#code"), code),
		chromedp.Click(css("#confirm")),
		chromedp.WaitVisible(css("#backup-codes")))
	codes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll("#backup-codes li")))
	if err != nil || len(codes) != identity.DefaultBackupCodes {
		t.Fatalf("%d backup codes, %v", len(codes), err)
	}
	do("done", chromedp.Click(css("#done")), chromedp.WaitVisible(css("#mfa-status")))
	if status := text("#mfa-status"); !strings.HasPrefix(status, "On") {
		t.Fatalf("MFA status %q", status)
	}

	e.clock.Advance(30 * time.Second)
	code, _ = identity.TOTPCode(secret, e.clock.Now())
	do("log out and in with TOTP",
		chromedp.Click(css("#logout")),
		chromedp.WaitVisible(css("#login")),
		chromedp.SendKeys(css("#username"), "alice"),
		chromedp.SendKeys(css("#password"), goodPassword),
		chromedp.Click(css("#login")),
		chromedp.WaitVisible(css("#code")),
		chromedp.SendKeys(css("#code"), code),
		chromedp.Click(css("#verify")),
		chromedp.WaitVisible(css("#sessions")))
	if sessions := text("#sessions"); !strings.Contains(sessions, "this session") || !strings.Contains(sessions, "Revoke") {
		t.Fatalf("sessions table: %q", sessions)
	}
	if e.me(otherAPI.AccessToken) != http.StatusOK {
		t.Fatal("the other session should still be live")
	}
	do("revoke",
		chromedp.Click(css(`tr[data-session="`+otherAPI.SessionID+`"] button.revoke`)),
		chromedp.WaitVisible(css("#notice")))
	if e.me(otherAPI.AccessToken) != http.StatusUnauthorized {
		t.Fatal("revoked session still accepted")
	}
	if v := logs.cspViolations(); len(v) != 0 {
		t.Fatalf("CSP violations on the pages: %v", v)
	}

	do("CSP probe", chromedp.Navigate(srv.URL+"/csp-probe"), chromedp.WaitVisible(css("body")))
	for i := 0; len(logs.cspViolations()) == 0 && i < 50; i++ {
		// Each round trip gives the browser's log event time to arrive.
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[int64](`1`)); err != nil {
			t.Fatal(err)
		}
	}
	if len(logs.cspViolations()) == 0 {
		t.Fatal("the CSP probe's inline style was not reported: the detector is blind")
	}
}
