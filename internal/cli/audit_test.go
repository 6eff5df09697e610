package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-security/rampart/internal/audit"
)

func auditTestLog(t *testing.T) (dir, keyFile string) {
	t.Helper()
	seal := bytes.Repeat([]byte{1}, audit.KeySize)
	enc := bytes.Repeat([]byte{2}, audit.KeySize)
	keyFile = filepath.Join(t.TempDir(), "keys.yaml")
	kf := "seal_keys:\n  - {id: s1, secret: " + base64.StdEncoding.EncodeToString(seal) + "}\n" +
		"encryption_keys:\n  - {id: e1, secret: " + base64.StdEncoding.EncodeToString(enc) + "}\n"
	if err := os.WriteFile(keyFile, []byte(kf), 0o600); err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(t.TempDir(), "audit")
	fs, err := audit.OpenFile(audit.FileOptions{Dir: dir, SealKeys: audit.Keyring{Current: audit.Key{ID: "s1", Secret: seal}},
		Encrypt: true, EncryptionKeys: audit.Keyring{Current: audit.Key{ID: "e1", Secret: enc}}, MaxSegmentBytes: 1500})
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.New(fs, audit.Options{Window: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		ev := audit.Event{Type: audit.TypeKeyCreated, User: "admin", RequestID: "r" + strings.Repeat("x", i), Timestamp: time.Date(2026, 1, 1, i, 0, 0, 0, time.UTC)}
		if err := l.Record(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	return dir, keyFile
}

func runAuditCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = Run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

func TestAuditCommands(t *testing.T) {
	dir, keys := auditTestLog(t)

	code, out, errOut := runAuditCLI("audit", "verify", "--dir", dir, "--key-file", keys)
	if code != 0 || !strings.Contains(out, "ok: 20 records") {
		t.Fatalf("verify: %d %q %q", code, out, errOut)
	}

	code, out, _ = runAuditCLI("audit", "export", "--dir", dir, "--key-file", keys, "--since", "2026-01-01T15:00:00Z")
	if code != 0 || strings.Count(out, "\n") != 5 || !strings.Contains(out, `"event_type":"key.created"`) {
		t.Fatalf("export: %d %q", code, out)
	}
	if code, _, _ = runAuditCLI("audit", "export", "--dir", dir); code == 0 {
		t.Fatal("export of an encrypted log without keys succeeded")
	}

	code, out, _ = runAuditCLI("audit", "prune", "--dir", dir, "--key-file", keys, "--retention-days", "30")
	if code != 0 || !strings.Contains(out, "nothing to prune") {
		t.Fatalf("prune: %d %q", code, out)
	}

	// Delete one record from the second segment: exit code 2 and the record named.
	segs, _ := filepath.Glob(filepath.Join(dir, "audit-*.log"))
	b, _ := os.ReadFile(segs[1])
	lines := strings.SplitAfter(string(b), "\n")
	os.WriteFile(segs[1], []byte(strings.Join(append(lines[:2:2], lines[3:]...), "")), 0o600)
	code, out, errOut = runAuditCLI("audit", "verify", "--dir", dir, "--key-file", keys)
	if code != auditExitProblem || !strings.Contains(out, "PROBLEM: deleted record seq") || !strings.Contains(errOut, "deleted") {
		t.Fatalf("verify tampered: %d %q %q", code, out, errOut)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"", time.Time{}, false},
		{"2026-01-15T00:00:00Z", time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC), false},
		{"72h", now.Add(-72 * time.Hour), false},
		{"-1h", time.Time{}, true},
		{"yesterday", time.Time{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSince(tc.in, now)
			if (err != nil) != tc.err || !got.Equal(tc.want) {
				t.Fatalf("got %v %v", got, err)
			}
		})
	}
}

func TestAuditNeedsDirOrConfig(t *testing.T) {
	for _, sub := range []string{"verify", "export", "tail", "prune"} {
		args := []string{"audit", sub}
		if sub == "prune" {
			args = append(args, "--retention-days", "30")
		}
		code, _, errOut := runAuditCLI(args...)
		if code == 0 || !strings.Contains(errOut, "--dir or --config is required") {
			t.Errorf("audit %s without --dir or --config: exit %d, %q", sub, code, errOut)
		}
	}
	code, _, errOut := runAuditCLI("audit", "verify", "-c", filepath.Join(t.TempDir(), "missing.yaml"))
	if code == 0 || code == auditExitProblem {
		t.Errorf("verify -c with a missing config: exit %d (%q), want a plain failure", code, errOut)
	}
}
