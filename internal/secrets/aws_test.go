package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

type smVersion struct {
	id, value string
	binary    bool
}

// fakeSecretsManager speaks the Secrets Manager JSON 1.1 protocol for
// GetSecretValue with version stages.
type fakeSecretsManager struct {
	mu      sync.Mutex
	secrets map[string]map[string]smVersion // name -> stage -> version
	fail    int                             // status to answer with, 0 for none
	calls   int
}

func (f *fakeSecretsManager) set(name, stage string, v smVersion) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.secrets[name] == nil {
		f.secrets[name] = map[string]smVersion{}
	}
	f.secrets[name][stage] = v
}

func (f *fakeSecretsManager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	fail := func(status int, typ, msg string) {
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
	}
	if r.Method != http.MethodPost || r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" ||
		!strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-amz-json-1.1") {
		fail(400, "UnknownOperationException", "bad request shape")
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIDTEST/") {
		fail(400, "UnrecognizedClientException", "The security token included in the request is invalid.")
		return
	}
	if f.fail != 0 {
		fail(f.fail, "InternalServiceError", "boom")
		return
	}
	var in struct {
		SecretID     string `json:"SecretId"`
		VersionStage string `json:"VersionStage"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		fail(400, "InvalidRequestException", "bad json")
		return
	}
	if in.VersionStage == "" {
		in.VersionStage = StageCurrent
	}
	v, ok := f.secrets[in.SecretID][in.VersionStage]
	if !ok {
		fail(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: "+in.VersionStage)
		return
	}
	out := map[string]any{
		"ARN":           "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + in.SecretID + "-AbCdEf",
		"Name":          in.SecretID,
		"VersionId":     v.id,
		"VersionStages": []string{in.VersionStage},
		"CreatedDate":   1.523477145713e9,
	}
	if v.binary {
		out["SecretBinary"] = []byte(v.value)
	} else {
		out["SecretString"] = v.value
	}
	_ = json.NewEncoder(w).Encode(out)
}

func newFakeAWS(t *testing.T) (*fakeSecretsManager, *AWSProvider, string) {
	t.Helper()
	fake := &fakeSecretsManager{secrets: map[string]map[string]smVersion{}}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	// The standard chain: credentials and region from the environment only.
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret-access-key")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_PROFILE", "")
	p, err := NewAWSProvider(context.Background(), AWSOptions{Endpoint: srv.URL, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return fake, p, srv.URL
}

func TestAWSProvider(t *testing.T) {
	fake, p, _ := newFakeAWS(t)
	fake.set("rideshare/api-key", StageCurrent, smVersion{id: "v2-uuid", value: "current-key"})
	fake.set("rideshare/api-key", StagePrevious, smVersion{id: "v1-uuid", value: "previous-key"})
	fake.set("optibid/app", StageCurrent, smVersion{id: "j1", value: `{"jwt_secret":"jwt-value","n":5}`})
	fake.set("bin", StageCurrent, smVersion{id: "b1", value: "\x00\x01binary", binary: true})
	ctx := context.Background()

	f, err := p.Fetch(ctx, Ref{Scheme: SchemeAWS, Name: "rideshare/api-key"})
	if err != nil {
		t.Fatal(err)
	}
	if f.Current.ID != "v2-uuid" || string(f.Current.Value.Bytes()) != "current-key" {
		t.Errorf("current = %s %q", f.Current.ID, f.Current.Value.Bytes())
	}
	if f.Previous == nil || f.Previous.ID != "v1-uuid" || string(f.Previous.Value.Bytes()) != "previous-key" {
		t.Errorf("previous = %+v", f.Previous)
	}

	f, err = p.Fetch(ctx, Ref{Scheme: SchemeAWS, Name: "optibid/app", Field: "jwt_secret"})
	if err != nil {
		t.Fatal(err)
	}
	if string(f.Current.Value.Bytes()) != "jwt-value" || f.Previous != nil {
		t.Errorf("json field = %q previous %v", f.Current.Value.Bytes(), f.Previous)
	}
	f, err = p.Fetch(ctx, Ref{Scheme: SchemeAWS, Name: "bin"})
	if err != nil || string(f.Current.Value.Bytes()) != "\x00\x01binary" {
		t.Errorf("binary = %q %v", f.Current.Value.Bytes(), err)
	}

	errCases := []struct {
		name string
		ref  Ref
		want string
	}{
		{"missing field", Ref{Scheme: SchemeAWS, Name: "optibid/app", Field: "nope"}, `field "nope" not found`},
		{"non-string field", Ref{Scheme: SchemeAWS, Name: "optibid/app", Field: "n"}, `field "n" is not a string`},
		{"not json", Ref{Scheme: SchemeAWS, Name: "rideshare/api-key", Field: "x"}, "not a JSON object"},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Fetch(ctx, tc.ref)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "jwt-value") || strings.Contains(err.Error(), "current-key") {
				t.Errorf("error leaks a value: %v", err)
			}
		})
	}

	_, err = p.Fetch(ctx, Ref{Scheme: SchemeAWS, Name: "does/not/exist"})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("missing secret: %v, want ResourceNotFoundException", err)
	}
	fake.mu.Lock()
	fake.fail = 500
	fake.mu.Unlock()
	if _, err := p.Fetch(ctx, Ref{Scheme: SchemeAWS, Name: "rideshare/api-key"}); err == nil || !strings.Contains(err.Error(), "InternalServiceError") {
		t.Errorf("server error: %v", err)
	}
}
