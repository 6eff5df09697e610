package check

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseDotEnv(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []EnvVar
		wantErr string
	}{
		{name: "plain", in: "A=1\nB=two words\n", want: []EnvVar{{"A", "1", 1}, {"B", "two words", 2}}},
		{name: "comments and blanks", in: "# c\n\n  \nA=1 # trailing\nB=x#notacomment\n", want: []EnvVar{{"A", "1", 4}, {"B", "x#notacomment", 5}}},
		{name: "export", in: "export A=1\n", want: []EnvVar{{"A", "1", 1}}},
		{name: "spaces around =", in: "A = 1\n", want: []EnvVar{{"A", "1", 1}}},
		{name: "double quotes escapes", in: `A="a\nb \"q\" # not comment" # c` + "\n", want: []EnvVar{{"A", "a\nb \"q\" # not comment", 1}}},
		{name: "single quotes literal", in: `A='a\nb'` + "\n", want: []EnvVar{{"A", `a\nb`, 1}}},
		{name: "multiline", in: "A=\"line1\nline2\"\nB=2\n", want: []EnvVar{{"A", "line1\nline2", 1}, {"B", "2", 3}}},
		{name: "crlf", in: "A=1\r\nB=2\r\n", want: []EnvVar{{"A", "1", 1}, {"B", "2", 2}}},
		{name: "empty value", in: "A=\n", want: []EnvVar{{"A", "", 1}}},
		{name: "no equals", in: "A=1\nJUNK\n", wantErr: "line 2: expected KEY=VALUE"},
		{name: "bad key", in: "1A=1\n", wantErr: "line 1"},
		{name: "unterminated", in: "A=\"abc\nB=1\n", wantErr: "line 1: unterminated"},
		{name: "text after quote", in: "A=\"abc\" def\n", wantErr: "text after closing quote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDotEnv([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func FuzzParseDotEnv(f *testing.F) {
	for _, s := range []string{"A=1\n", "export B='x'\n", "C=\"a\\n\nb\" # c\n", "# x\nD=e # f", "E=\"", "F='", "=\n", "G=\\"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		vars, err := ParseDotEnv(data)
		if err != nil {
			return
		}
		lines := strings.Count(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n") + 1
		last := 0
		for _, v := range vars {
			if !validKey(v.Key) {
				t.Fatalf("invalid key %q", v.Key)
			}
			if v.Line < 1 || v.Line > lines || v.Line <= last {
				t.Fatalf("line %d out of order or range (lines %d, last %d)", v.Line, lines, last)
			}
			last = v.Line
		}
		// The checks built on the parser must not fail on anything it accepts.
		if _, err := DotEnv(".env", data); err != nil {
			t.Fatal(err)
		}
	})
}
