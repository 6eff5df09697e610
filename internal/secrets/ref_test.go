package secrets

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRef(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Ref
		wantStr string
		wantErr string
	}{
		{name: "env", in: "env:RAMPART_PEPPER", want: Ref{Scheme: SchemeEnv, Name: "RAMPART_PEPPER"}, wantStr: "env:RAMPART_PEPPER"},
		{name: "env bad name", in: "env:1ABC", wantErr: "not an environment variable name"},
		{name: "env empty", in: "env:", wantErr: "not an environment variable name"},
		{name: "file", in: "file:/run/secrets/jwt_key", want: Ref{Scheme: SchemeFile, Name: "/run/secrets/jwt_key"}, wantStr: "file:/run/secrets/jwt_key"},
		{name: "file empty", in: "file:", wantErr: "path is empty"},
		{name: "aws", in: "aws-sm:rideshare/api-key", want: Ref{Scheme: SchemeAWS, Name: "rideshare/api-key"}, wantStr: "aws-sm:rideshare/api-key"},
		{name: "aws field", in: "aws-sm:optibid/app#jwt_secret", want: Ref{Scheme: SchemeAWS, Name: "optibid/app", Field: "jwt_secret"}, wantStr: "aws-sm:optibid/app#jwt_secret"},
		{name: "aws arn", in: "aws-sm:arn:aws:secretsmanager:eu-west-1:123456789012:secret:app-AbCdEf#k",
			want: Ref{Scheme: SchemeAWS, Name: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app-AbCdEf", Field: "k"}},
		{name: "aws empty field", in: "aws-sm:x#", wantErr: "empty field"},
		{name: "aws empty", in: "aws-sm:", wantErr: "not a secret name"},
		{name: "vault", in: "vault:secret/rampart/pepper#value", want: Ref{Scheme: SchemeVault, Mount: "secret", Name: "rampart/pepper", Field: "value"}, wantStr: "vault:secret/rampart/pepper#value"},
		{name: "vault no field", in: "vault:secret/rampart", wantErr: "#field is required"},
		{name: "vault no path", in: "vault:secret#f", wantErr: "not MOUNT/PATH"},
		{name: "vault dotdot", in: "vault:secret/../sys#f", wantErr: "not MOUNT/PATH"},
		{name: "vault query", in: "vault:secret/a?version=1#f", wantErr: "not MOUNT/PATH"},
		{name: "inline", in: "0123456789abcdef", want: Ref{Scheme: SchemeInline}, wantStr: "inline:" + Redacted},
		{name: "inline with colon prefix not scheme-like", in: "Ab:cd", want: Ref{Scheme: SchemeInline}},
		{name: "inline explicit", in: "inline:admin:pass", want: Ref{Scheme: SchemeInline}, wantStr: "inline:" + Redacted},
		{name: "typo scheme", in: "evn:KEY", wantErr: `unknown secret scheme "evn"`},
		{name: "empty", in: "", wantErr: "empty secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRef(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(Ref{}, Secret{}), cmp.FilterPath(func(p cmp.Path) bool {
				return p.Last().String() == ".inline"
			}, cmp.Ignore())); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
			if tt.wantStr != "" && got.String() != tt.wantStr {
				t.Errorf("String() = %q, want %q", got.String(), tt.wantStr)
			}
		})
	}
}

func TestInlineRefValueAndPolicy(t *testing.T) {
	r, err := ParseRef("inline:a:b")
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Inline().Bytes()) != "a:b" {
		t.Errorf("inline value = %q", r.Inline().Bytes())
	}
	if err := r.Allowed(true); !errors.Is(err, ErrInlineSecret) {
		t.Errorf("production: %v", err)
	}
	if err := r.Allowed(false); err != nil {
		t.Errorf("development: %v", err)
	}
	env, _ := ParseRef("env:X")
	if err := env.Allowed(true); err != nil {
		t.Errorf("env in production: %v", err)
	}
}

func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"env:A", "file:/x", "aws-sm:a/b#c", "vault:m/p#f", "inline:x", "plain", "evn:x", "vault:a/../b#c", ":", "a:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRef(s)
		if err != nil {
			return
		}
		if r.IsInline() {
			if strings.Contains(r.String(), s) && s != "" && !strings.Contains("inline:"+Redacted, s) {
				t.Fatalf("String() leaks inline value: %q", r.String())
			}
			return
		}
		// A non-inline reference renders to a form that parses back to itself.
		again, err := ParseRef(r.String())
		if err != nil {
			t.Fatalf("ParseRef(%q) (from %q): %v", r.String(), s, err)
		}
		if again.String() != r.String() {
			t.Fatalf("round trip %q -> %q", r.String(), again.String())
		}
	})
}
