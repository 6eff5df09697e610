package secrets

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	const value = "hunter2-very-secret-value"
	s := NewSecret([]byte(value))
	var logBuf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logBuf, nil))
	log.Info("x", "secret", s, "ref", Ref{Scheme: SchemeInline, inline: s})
	js, err := json.Marshal(struct{ S Secret }{s})
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", s), "%s": fmt.Sprintf("%s", s), "%q": fmt.Sprintf("%q", s),
		"%x": fmt.Sprintf("%x", s), "%#v": fmt.Sprintf("%#v", s), "%+v": fmt.Sprintf("%+v", struct{ S Secret }{s}),
		"String": s.String(), "slog": logBuf.String(), "json": string(js),
	}
	for name, out := range outputs {
		if strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", value)) {
			t.Errorf("%s leaks the value: %s", name, out)
		}
		if !strings.Contains(out, Redacted) {
			t.Errorf("%s = %q, want %s", name, out, Redacted)
		}
	}
	if string(s.Bytes()) != value {
		t.Errorf("Bytes() = %q", s.Bytes())
	}
}

func TestSecretCopiesAndCompares(t *testing.T) {
	b := []byte("abc")
	s := NewSecret(b)
	b[0] = 'x'
	if string(s.Bytes()) != "abc" {
		t.Errorf("NewSecret did not copy")
	}
	if !s.Equal(NewSecret([]byte("abc"))) || s.Equal(NewSecret([]byte("abd"))) || s.Equal(NewSecret([]byte("ab"))) {
		t.Error("Equal is wrong")
	}
}
