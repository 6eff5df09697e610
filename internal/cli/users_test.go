package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-security/rampart/internal/identity"
)

// usersCLI runs rampart users against a fresh SQLite store, with the
// cheapest bcrypt cost so the tests stay fast.
type usersCLI struct{ store string }

func newUsersCLI(t *testing.T) *usersCLI {
	t.Helper()
	t.Setenv("RAMPART_STORE_URL", "")
	return &usersCLI{store: "sqlite://" + filepath.Join(t.TempDir(), "users.db")}
}

func (c *usersCLI) run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{"users", args[0], "--store", c.store, "--bcrypt-cost", "4"}, args[1:]...)
	root := newRootCmd()
	root.SetArgs(full)
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader(stdin))
	code := 0
	if err := root.ExecuteContext(context.Background()); err != nil {
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		errb.WriteString(err.Error())
	}
	return code, out.String(), errb.String()
}

func TestUsersCLILifecycle(t *testing.T) {
	c := newUsersCLI(t)
	code, out, errOut := c.run(t, "", "create", "--username", "Alice", "--email", "alice@example.com", "--roles", "read,write")
	if code != 0 {
		t.Fatalf("create: %d %s", code, errOut)
	}
	password := strings.TrimSpace(out)
	if len(password) != 20 || !strings.Contains(errOut, "shown only once") || strings.Contains(errOut, password) {
		t.Fatalf("create out=%q err=%q", out, errOut)
	}
	if code, _, errOut := c.run(t, "", "create", "--username", "alice"); code != 2 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("duplicate create: %d %s", code, errOut)
	}
	if code, _, errOut := c.run(t, "password\n", "create", "--username", "bob", "--password-stdin"); code != 2 || !strings.Contains(errOut, "password refused") {
		t.Fatalf("weak stdin password: %d %s", code, errOut)
	}
	if code, _, errOut := c.run(t, "", "create", "--username", "carol", "--roles", "root"); code != 2 || !strings.Contains(errOut, "unknown role") {
		t.Fatalf("unknown role: %d %s", code, errOut)
	}
	if code, out, errOut := c.run(t, "a long enough passphrase\n", "create", "--username", "bob", "--password-stdin", "--roles", "admin"); code != 0 || out != "" {
		t.Fatalf("stdin create: %d %q %s", code, out, errOut)
	}

	code, out, _ = c.run(t, "", "list")
	if code != 0 || !strings.Contains(out, "alice") || !strings.Contains(out, "read,write") || !strings.Contains(out, "bob") {
		t.Fatalf("list: %d %s", code, out)
	}
	code, out, _ = c.run(t, "", "list", "--json")
	var list struct {
		Users []userView `json:"users"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.Users) != 2 || list.Users[0].Username != "alice" {
		t.Fatalf("list --json: %d %s", code, out)
	}
	if strings.Contains(out, "$2a$") {
		t.Fatal("list prints a password hash")
	}

	for _, step := range []struct {
		args []string
		want int
	}{
		{[]string{"lock", "alice"}, 0},
		{[]string{"unlock", "alice"}, 0},
		{[]string{"disable", "alice"}, 0},
		{[]string{"unlock", "alice"}, 0},
		{[]string{"reset-mfa", "alice"}, 0},
		{[]string{"roles", "alice", "read,admin"}, 0},
		{[]string{"roles", "alice", "root"}, 2},
		{[]string{"roles", "nobody", "read"}, 3},
		{[]string{"lock", "nobody"}, 3},
		{[]string{"delete", "alice"}, 2}, // no --yes
	} {
		if code, _, errOut := c.run(t, "", step.args...); code != step.want {
			t.Fatalf("%v: exit %d, want %d: %s", step.args, code, step.want, errOut)
		}
	}

	code, out, errOut = c.run(t, "", "reset-password", "alice", "--ttl", "30m")
	if code != 0 || !strings.HasPrefix(out, "rst_") || !strings.Contains(errOut, "usable once") {
		t.Fatalf("reset-password: %d %q %s", code, out, errOut)
	}

	code, out, _ = c.run(t, "", "export", "alice")
	var ex identity.Export
	if code != 0 || json.Unmarshal([]byte(out), &ex) != nil {
		t.Fatalf("export: %d %s", code, out)
	}
	if ex.User.Username != "alice" || ex.User.Email != "alice@example.com" || !ex.User.PasswordSet || ex.User.Status != identity.StatusActive {
		t.Fatalf("export = %+v", ex.User)
	}
	if strings.Contains(out, "$2a$") || strings.Contains(out, "rst_") {
		t.Fatal("export contains a secret")
	}
	file := filepath.Join(t.TempDir(), "alice.json")
	if code, _, errOut := c.run(t, "", "export", "alice", "-o", file); code != 0 {
		t.Fatalf("export -o: %d %s", code, errOut)
	}

	if code, _, errOut := c.run(t, "", "delete", "alice", "--yes"); code != 0 {
		t.Fatalf("delete: %d %s", code, errOut)
	}
	if code, _, _ := c.run(t, "", "export", "alice"); code != 3 {
		t.Fatalf("export after delete: exit %d, want 3", code)
	}
	if code, out, _ := c.run(t, "", "list"); code != 0 || strings.Contains(out, "alice") {
		t.Fatalf("list after delete: %s", out)
	}
}

func TestUsersCLINoStore(t *testing.T) {
	t.Setenv("RAMPART_STORE_URL", "")
	var out, errb bytes.Buffer
	if code := Run(context.Background(), []string{"users", "list"}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "no store") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}
