package check

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// wantComments collects "# want: ID ID" comments under dir as "file:line:ID".
func wantComments(t *testing.T, root string) []string {
	t.Helper()
	var want []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fh, err := os.Open(p)
		if err != nil {
			return err
		}
		defer fh.Close()
		sc := bufio.NewScanner(fh)
		for line := 1; sc.Scan(); line++ {
			_, ids, ok := strings.Cut(sc.Text(), "# want:")
			if !ok {
				continue
			}
			for _, id := range strings.Fields(ids) {
				want = append(want, fmt.Sprintf("%s:%d:%s", p, line, id))
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return want
}

func keys(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s:%d:%s", f.File, f.Line, f.ID))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// package.json has no comments: its planted problems are listed here.
var packageJSONWant = map[string][]string{
	"rideshare": {"10:RC017", "12:RC017", "13:RC017", "16:RC017"},
	"optibid":   {"5:RC017", "6:RC017", "8:RC017", "11:RC017"},
}

// leakedValues must never appear in a finding.
var leakedValues = []string{"dev-api-key-change-in-production", "your-secret-key-here", "changeme", "supersecret",
	"Zk3v9QpL2xWm7RtY", "wJalrXUtnFEMI", "kafka-password", "Qm9vbS1ub3Q", "optibid:optibid"}

func assertNoLeaks(t *testing.T, fs []Finding) {
	t.Helper()
	for _, f := range fs {
		for _, v := range leakedValues {
			if strings.Contains(f.Message, v) {
				t.Errorf("%s:%d %s leaks %q: %s", f.File, f.Line, f.ID, v, f.Message)
			}
		}
	}
}

func TestChecklistFixtures(t *testing.T) {
	for _, project := range []string{"rideshare", "optibid"} {
		t.Run(project+"/bad", func(t *testing.T) {
			dir := filepath.Join("testdata", project, "bad")
			got, err := Run(Options{Paths: []string{dir}})
			if err != nil {
				t.Fatal(err)
			}
			want := wantComments(t, dir)
			for _, w := range packageJSONWant[project] {
				want = append(want, filepath.Join(dir, "package.json")+":"+w)
			}
			slices.Sort(want)
			want = slices.Compact(want)
			if diff := cmp.Diff(want, keys(got)); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
				for _, f := range got {
					t.Logf("%s:%d %s %s", f.File, f.Line, f.ID, f.Message)
				}
			}
			assertNoLeaks(t, got)
			for _, f := range got {
				if f.Fix == "" || f.Ref == "" || f.Title == "" || f.Severity == 0 {
					t.Errorf("incomplete finding %+v", f)
				}
			}
		})
		t.Run(project+"/clean", func(t *testing.T) {
			got, err := Run(Options{Paths: []string{filepath.Join("testdata", project, "clean")}})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range got {
				t.Errorf("unexpected finding %s:%d %s %s", f.File, f.Line, f.ID, f.Message)
			}
		})
	}
}

func TestConfigFixtures(t *testing.T) {
	bad := filepath.Join("testdata", "rampart-bad.yaml")
	got, err := Run(Options{ConfigFile: bad})
	if err != nil {
		t.Fatal(err)
	}
	want := wantComments(t, bad)
	slices.Sort(want)
	if diff := cmp.Diff(want, keys(got)); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	assertNoLeaks(t, got)
	got, err = Run(Options{ConfigFile: filepath.Join("testdata", "rampart-clean.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("clean config: %v", got)
	}
}

// Each file kind is found when named explicitly, and the rideshare
// devDependency is low severity.
func TestExplicitFilesAndSeverity(t *testing.T) {
	dir := filepath.Join("testdata", "rideshare", "bad")
	got, err := Run(Options{Paths: []string{filepath.Join(dir, "package.json"), filepath.Join(dir, ".env")}})
	if err != nil {
		t.Fatal(err)
	}
	sev := map[string]Severity{}
	for _, f := range got {
		sev[fmt.Sprintf("%s:%d:%s", filepath.Base(f.File), f.Line, f.ID)] = f.Severity
	}
	for k, want := range map[string]Severity{
		"package.json:16:RC017": Low, "package.json:10:RC017": Medium,
		".env:2:RC001": Critical, ".env:2:RC003": Medium, ".env:6:RC010": High,
	} {
		if sev[k] != want {
			t.Errorf("%s severity = %v, want %v", k, sev[k], want)
		}
	}
	if _, err := Run(Options{Paths: []string{filepath.Join("testdata", "rampart-clean.yaml")}}); err == nil {
		t.Error("an unknown YAML file named explicitly is not an error")
	}
	if _, err := Run(Options{Paths: []string{filepath.Join("testdata", "nope.env")}}); err == nil {
		t.Error("a missing file is not an error")
	}
}

func TestBrokenYAML(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "deploy.yaml")
	if err := os.WriteFile(broken, []byte("apiVersion: v1\nkind: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Searched: skipped. Named: a parse error.
	if got, err := Run(Options{Paths: []string{dir}}); err != nil || len(got) != 0 {
		t.Errorf("directory: %v %v", got, err)
	}
	if _, err := Run(Options{Paths: []string{broken}}); err == nil || !strings.Contains(err.Error(), "yaml") {
		t.Errorf("explicit: %v", err)
	}
}
