package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// auditGateway starts a gateway with the audit log on (the default) in
// production mode; the log is in state_dir/audit.
func auditGateway(t *testing.T, extra string) (*gateway, *http.Client) {
	t.Helper()
	up := startUpstream(t)
	certFile, keyFile, cert := certPair(t, t.TempDir(), false, 1)
	g := startGateway(t, baseConfig(up.URL, certFile, keyFile, extra))
	return g, client(cert, nil)
}

func auditDir(g *gateway) string { return filepath.Join(g.dir, "audit") }

// signalAndWait sends sig to the gateway and waits (bounded) until the
// process is gone, so what it left on disk is final.
func signalAndWait(t *testing.T, g *gateway, sig syscall.Signal) {
	t.Helper()
	if err := g.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("rampart still running 30 s after %v", sig)
	}
}

// verifyReport is the JSON of `rampart audit verify --json`.
type verifyReport struct {
	Records  int `json:"records"`
	Problems []struct {
		Kind   string `json:"kind"`
		Detail string `json:"detail"`
	} `json:"problems"`
	Notes []struct {
		Kind string `json:"kind"`
	} `json:"notes"`
}

// auditVerify runs `rampart audit verify -c` (with --dir when dir is not
// empty) and returns its report and exit code.
func auditVerify(t *testing.T, g *gateway, dir string) (verifyReport, int) {
	t.Helper()
	args := []string{"audit", "verify", "-c", g.config, "--json"}
	if dir != "" {
		args = append(args, "--dir", dir)
	}
	out, errOut, code := runWithGatewayEnv(t, g, args...)
	var rep verifyReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("audit verify: exit %d, output %q %q: %v", code, out, errOut, err)
	}
	return rep, code
}

// exportedEvent is one line of `rampart audit export`.
type exportedEvent struct {
	Seq       uint64         `json:"seq"`
	Type      string         `json:"event_type"`
	User      string         `json:"user"`
	SourceIP  string         `json:"source_ip"`
	RequestID string         `json:"request_id"`
	Route     string         `json:"route"`
	Outcome   string         `json:"outcome"`
	Details   map[string]any `json:"details"`
}

func auditExport(t *testing.T, g *gateway) []exportedEvent {
	t.Helper()
	out, errOut, code := runWithGatewayEnv(t, g, "audit", "export", "-c", g.config)
	if code != 0 {
		t.Fatalf("audit export: exit %d: %s", code, errOut)
	}
	var evs []exportedEvent
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e exportedEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		evs = append(evs, e)
	}
	return evs
}

// requestEvents maps request IDs to their "request" events.
func requestEvents(evs []exportedEvent) map[string]exportedEvent {
	m := map[string]exportedEvent{}
	for _, e := range evs {
		if e.Type == "request" {
			m[e.RequestID] = e
		}
	}
	return m
}

// postUploads sends n POST /upload requests and returns their request IDs.
func postUploads(t *testing.T, g *gateway, c *http.Client, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		resp, _ := do(t, c, "POST", "https://"+g.public+"/upload", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)), nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /upload: %d", resp.StatusCode)
		}
		ids = append(ids, resp.Header.Get("X-Request-ID"))
	}
	return ids
}

// TestAuditTamperDetected: a real segment file written and sealed by the
// binary verifies with `rampart audit verify -c` (keys from the config, so
// seals are checked) and every event of the answered requests is exported;
// editing, deleting, reordering or truncating its records, or forging its
// seal, is reported with the matching kind and exit code 2.
func TestAuditTamperDetected(t *testing.T) {
	g, c := auditGateway(t, "")
	ids := postUploads(t, g, c, 12)
	signalAndWait(t, g, syscall.SIGTERM) // clean shutdown seals the segment

	rep, code := auditVerify(t, g, "")
	if code != 0 || len(rep.Problems) != 0 {
		t.Fatalf("untouched log: exit %d, %+v", code, rep)
	}
	for _, n := range rep.Notes {
		if n.Kind == "unchecked" || n.Kind == "open_segment" {
			t.Fatalf("untouched log: note %q (seal keys from -c not used, or segment not sealed)", n.Kind)
		}
	}
	if rep.Records < len(ids) {
		t.Fatalf("verify counted %d records, want at least %d", rep.Records, len(ids))
	}
	got := requestEvents(auditExport(t, g))
	for _, id := range ids {
		e, ok := got[id]
		if !ok || e.Route != "upload" || e.Details["method"] != "POST" || e.Details["status"] != float64(200) {
			t.Fatalf("request %s: exported event %+v (found %v)", id, e, ok)
		}
	}

	segs, _ := filepath.Glob(filepath.Join(auditDir(g), "audit-*.log"))
	if len(segs) == 0 {
		t.Fatalf("no sealed segment in %s", auditDir(g))
	}
	seg := segs[len(segs)-1]
	lines := splitLines(t, seg)
	// header, at least the 12 request records, seal
	if len(lines) < 15 || !strings.HasPrefix(lines[0], `{"hdr"`) || !strings.HasPrefix(lines[len(lines)-1], `{"seal"`) {
		t.Fatalf("unexpected segment layout (%d lines)", len(lines))
	}
	mid := len(lines) / 2 // a record in the middle

	cases := []struct {
		name, kind string
		tamper     func([]string) []byte
	}{
		{"edit a record", "edited", func(l []string) []byte {
			i := recordWith(t, l, `"status":200`)
			l[i] = strings.Replace(l[i], `"status":200`, `"status":201`, 1)
			return joinLines(l)
		}},
		{"delete a record", "deleted", func(l []string) []byte {
			return joinLines(append(l[:mid:mid], l[mid+1:]...))
		}},
		{"reorder two records", "reordered", func(l []string) []byte {
			l[mid], l[mid+1] = l[mid+1], l[mid]
			return joinLines(l)
		}},
		{"truncate inside a record", "truncated", func(l []string) []byte {
			b := joinLines(l[:mid])
			return append(b, l[mid][:len(l[mid])/2]...)
		}},
		{"truncate the last records and the seal", "truncated", func(l []string) []byte {
			return joinLines(l[:mid])
		}},
		{"forge the seal's count", "bad_seal", func(l []string) []byte {
			last := len(l) - 1
			var s map[string]map[string]any
			if err := json.Unmarshal([]byte(l[last]), &s); err != nil {
				t.Fatal(err)
			}
			s["seal"]["count"] = s["seal"]["count"].(float64) - 1
			b, _ := json.Marshal(s)
			l[last] = string(b)
			return joinLines(l)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, auditDir(g))
			l := append([]string(nil), lines...)
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(seg)), tc.tamper(l), 0o600); err != nil {
				t.Fatal(err)
			}
			rep, code := auditVerify(t, g, dir)
			if code != 2 || len(rep.Problems) == 0 {
				t.Fatalf("exit %d, report %+v: tampering not reported", code, rep)
			}
			if rep.Problems[0].Kind != tc.kind {
				t.Fatalf("reported %q (%s), want %q", rep.Problems[0].Kind, rep.Problems[0].Detail, tc.kind)
			}
		})
	}
}

// TestAuditSIGKILLUnderLoad: the binary is killed with SIGKILL while four
// clients keep sending state-changing requests. What is on disk verifies,
// and every request whose response a client received has its event: with
// audit.wait (the default) a response is held until its event is durable.
func TestAuditSIGKILLUnderLoad(t *testing.T) { auditUnderLoad(t, syscall.SIGKILL) }

// TestAuditSIGTERMUnderLoad: the same with a graceful shutdown: nothing
// acknowledged is lost and the last segment is sealed.
func TestAuditSIGTERMUnderLoad(t *testing.T) { auditUnderLoad(t, syscall.SIGTERM) }

func auditUnderLoad(t *testing.T, sig syscall.Signal) {
	g, c := auditGateway(t, "")
	url := "https://" + g.public + "/upload"

	var (
		mu       sync.Mutex
		answered []string
	)
	enough := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				req, _ := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)))
				resp, err := c.Do(req)
				if err != nil {
					cancel()
					return // the gateway is gone
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				cancel()
				mu.Lock()
				answered = append(answered, resp.Header.Get("X-Request-ID"))
				if len(answered) >= 400 {
					once.Do(func() { close(enough) })
				}
				mu.Unlock()
				if i >= 10000 { // bound; the kill comes long before
					return
				}
			}
		}()
	}
	select {
	case <-enough:
	case <-time.After(2 * time.Minute):
		t.Fatal("the load did not reach 400 answered requests")
	}
	signalAndWait(t, g, sig) // requests are still in flight
	wg.Wait()

	rep, code := auditVerify(t, g, "")
	if code != 0 || len(rep.Problems) != 0 {
		t.Fatalf("after %v: exit %d, %+v", sig, code, rep)
	}
	if sig == syscall.SIGTERM {
		for _, n := range rep.Notes {
			if n.Kind == "open_segment" || n.Kind == "torn_tail" {
				t.Fatalf("after SIGTERM: note %q, want a sealed log", n.Kind)
			}
		}
	}
	got := requestEvents(auditExport(t, g))
	mu.Lock()
	defer mu.Unlock()
	var missing []string
	for _, id := range answered {
		if id == "" {
			t.Fatal("a response without X-Request-ID")
		}
		if _, ok := got[id]; !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d answered requests have no audit event after %v, e.g. %s", len(missing), len(answered), sig, missing[0])
	}
	t.Logf("%v under load: %d answered requests, all in the log; %d request events on disk", sig, len(answered), len(got))

}

// TestAuditEncryptedAtRest: with audit.encrypt on, neither the client IP
// nor the API key ID appears anywhere in the log files, the log still
// verifies, and `rampart audit export -c` decrypts the events back with
// those fields and the answered requests' IDs.
func TestAuditEncryptedAtRest(t *testing.T) {
	keyDir := t.TempDir()
	encKey := filepath.Join(keyDir, "audit_encryption_key")
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(encKey, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g, c := auditGateway(t, `  - name: keyed
    path: /keyed/*
    auth: api_key
    permission: read
audit:
  encrypt: true
secrets:
  audit_encryption_key: file:`+encKey+"\n")
	key, keyID := createKey(t, g, "audited", "read")

	ids := map[string]int{}
	for _, m := range []string{"GET", "POST"} {
		resp, body := do(t, c, m, "https://"+g.public+"/keyed/x", strings.NewReader("{}"), map[string]string{"X-API-Key": key})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s /keyed/x: %d %s", m, resp.StatusCode, body)
		}
		ids[resp.Header.Get("X-Request-ID")] = http.StatusOK
	}
	resp, _ := do(t, c, "POST", "https://"+g.public+"/keyed/x", nil, map[string]string{"X-API-Key": "rk_live_not-a-real-key"})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad key: %d", resp.StatusCode)
	}
	ids[resp.Header.Get("X-Request-ID")] = http.StatusUnauthorized
	signalAndWait(t, g, syscall.SIGTERM)

	files, _ := filepath.Glob(filepath.Join(auditDir(g), "*"))
	if len(files) == 0 {
		t.Fatal("no audit files")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{"127.0.0.1", keyID, "source_ip", "request_id"} {
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("%s holds %q in plaintext", filepath.Base(f), secret)
			}
		}
	}
	if rep, code := auditVerify(t, g, ""); code != 0 || len(rep.Problems) != 0 {
		t.Fatalf("encrypted log: exit %d, %+v", code, rep)
	}
	// Without the keys there is nothing to read.
	if _, _, code := runWithGatewayEnv(t, g, "audit", "export", "--dir", auditDir(g)); code == 0 {
		t.Fatal("export of an encrypted log without keys succeeded")
	}

	evs := auditExport(t, g)
	var authOK, authFail bool
	for _, e := range evs {
		switch {
		case e.Type == "auth.success" && e.User == keyID && e.SourceIP == "127.0.0.1":
			authOK = true
		case e.Type == "auth.failure" && e.SourceIP == "127.0.0.1":
			authFail = true
		}
	}
	if !authOK || !authFail {
		types := map[string]int{}
		for _, e := range evs {
			types[e.Type]++
		}
		t.Fatalf("export lacks the authentication events (success %v, failure %v); types %v", authOK, authFail, types)
	}
	reqs := requestEvents(evs)
	var post []string // request IDs with an exported request event
	for id, status := range ids {
		if e, ok := reqs[id]; ok {
			wantUser := keyID
			if status != http.StatusOK {
				wantUser = "" // the refused key is not a principal
			}
			if e.Details["status"] != float64(status) || e.SourceIP != "127.0.0.1" || e.User != wantUser {
				t.Errorf("request %s: exported %+v, want status %d from 127.0.0.1 by %q", id, e, status, wantUser)
			}
			post = append(post, id)
		}
	}
	sort.Strings(post)
	if len(post) != 2 { // the two POSTs; GET is not state-changing
		t.Fatalf("exported request events for %v, want the 2 POSTs of %v", post, ids)
	}
}

func splitLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

func joinLines(l []string) []byte { return []byte(strings.Join(l, "\n") + "\n") }

// recordWith returns the index of the first record line containing s.
func recordWith(t *testing.T, lines []string, s string) int {
	t.Helper()
	for i, l := range lines {
		if strings.HasPrefix(l, `{"seq"`) && strings.Contains(l, s) {
			return i
		}
	}
	t.Fatalf("no record contains %s", s)
	return 0
}

// copyDir copies the regular files of src into a new temporary directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "audit")
	if err := os.Mkdir(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestAuditDevelopmentConfig: in development mode serve generates the
// audit encryption key in state_dir/secrets; `rampart audit export -c` and
// `verify -c` on the same config find it and read the log back.
func TestAuditDevelopmentConfig(t *testing.T) {
	up := startUpstream(t)
	certFile, keyFile, cert := certPair(t, t.TempDir(), false, 1)
	cfg := strings.Replace(baseConfig(up.URL, certFile, keyFile, "audit:\n  encrypt: true\n"), "mode: production", "mode: development", 1)
	g := startGateway(t, cfg)
	ids := postUploads(t, g, client(cert, nil), 3)
	signalAndWait(t, g, syscall.SIGTERM)
	if _, err := os.Stat(filepath.Join(g.dir, "secrets", "audit_encryption_key")); err != nil {
		t.Fatalf("development did not generate the encryption key: %v", err)
	}
	if rep, code := auditVerify(t, g, ""); code != 0 || len(rep.Problems) != 0 {
		t.Fatalf("verify -c: exit %d, %+v", code, rep)
	}
	got := requestEvents(auditExport(t, g))
	for _, id := range ids {
		if _, ok := got[id]; !ok {
			t.Fatalf("request %s not exported", id)
		}
	}
}

// TestAuditConfigEventMasksSecrets: the config.loaded event lists the
// settings but never a password from a URL.
func TestAuditConfigEventMasksSecrets(t *testing.T) {
	g, _ := auditGateway(t, "redis:\n  url: redis://:hunter2-audit-secret@127.0.0.1:1/0\n")
	signalAndWait(t, g, syscall.SIGTERM)
	var cfgEvent *exportedEvent
	evs := auditExport(t, g)
	for i, e := range evs {
		if e.Type == "config.loaded" {
			cfgEvent = &evs[i]
		}
	}
	if cfgEvent == nil {
		t.Fatal("no config.loaded event")
	}
	b, _ := json.Marshal(cfgEvent)
	if !strings.Contains(string(b), "redis.url") {
		t.Fatalf("config.loaded does not list redis.url: %s", b)
	}
	if bytes.Contains(b, []byte("hunter2-audit-secret")) {
		t.Fatalf("config.loaded holds the Redis password: %s", b)
	}
	files, _ := filepath.Glob(filepath.Join(auditDir(g), "*"))
	for _, f := range files {
		if data, _ := os.ReadFile(f); bytes.Contains(data, []byte("hunter2-audit-secret")) {
			t.Fatalf("%s holds the Redis password", filepath.Base(f))
		}
	}
}
