package secrets

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnvProvider(t *testing.T) {
	t.Setenv("RAMPART_TEST_PEPPER", "current-value")
	t.Setenv("RAMPART_TEST_PEPPER_PREVIOUS", "previous-value")
	t.Setenv("RAMPART_TEST_EMPTY", "")
	ctx := context.Background()
	f, err := EnvProvider{}.Fetch(ctx, Ref{Scheme: SchemeEnv, Name: "RAMPART_TEST_PEPPER"})
	if err != nil {
		t.Fatal(err)
	}
	if string(f.Current.Value.Bytes()) != "current-value" || f.Current.ID != ContentID([]byte("current-value")) {
		t.Errorf("current = %q %s", f.Current.Value.Bytes(), f.Current.ID)
	}
	if f.Previous == nil || string(f.Previous.Value.Bytes()) != "previous-value" {
		t.Errorf("previous = %v", f.Previous)
	}
	for name, want := range map[string]string{
		"RAMPART_TEST_UNSET_XYZ": "is not set",
		"RAMPART_TEST_EMPTY":     "is empty",
	} {
		_, err := EnvProvider{}.Fetch(ctx, Ref{Scheme: SchemeEnv, Name: name})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", name, err, want)
		}
	}
}

func TestFileProvider(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "jwt_key")
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(path, "file-value\n")
	ctx := context.Background()
	ref := Ref{Scheme: SchemeFile, Name: path}
	f, err := FileProvider{}.Fetch(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if string(f.Current.Value.Bytes()) != "file-value" || f.Previous != nil {
		t.Errorf("got %q previous %v", f.Current.Value.Bytes(), f.Previous)
	}
	write(path+".previous", "old-value\r\n")
	f, err = FileProvider{}.Fetch(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if f.Previous == nil || string(f.Previous.Value.Bytes()) != "old-value" {
		t.Errorf("previous = %v", f.Previous)
	}
	if _, err := (FileProvider{}).Fetch(ctx, Ref{Scheme: SchemeFile, Name: filepath.Join(dir, "missing")}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	write(path, "\n")
	if _, err := (FileProvider{}).Fetch(ctx, ref); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty file: %v", err)
	}
}
