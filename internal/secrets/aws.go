package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// AWS Secrets Manager version stages.
const (
	StageCurrent  = "AWSCURRENT"
	StagePrevious = "AWSPREVIOUS"
)

// AWSOptions configures the Secrets Manager client. Region and credentials
// come from the standard AWS chain (environment, shared files, ECS/EKS/IMDS
// roles); the fields below override it.
type AWSOptions struct {
	// Region overrides AWS_REGION.
	Region string
	// Endpoint overrides the service endpoint (a VPC endpoint or a local
	// emulator). AWS_ENDPOINT_URL_SECRETS_MANAGER works too.
	Endpoint string
	// MaxAttempts overrides the SDK's retry attempts (default 3).
	MaxAttempts int
}

// SecretsManagerAPI is the one call AWSProvider makes; *secretsmanager.Client
// satisfies it.
type SecretsManagerAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// AWSProvider reads aws-sm:NAME[#field]: the AWSCURRENT stage is the current
// version, AWSPREVIOUS (when present) the previous; version IDs are the
// VersionIds.
type AWSProvider struct {
	api SecretsManagerAPI
}

// NewAWSProvider loads the default AWS configuration and builds a client. It
// does no network I/O.
func NewAWSProvider(ctx context.Context, o AWSOptions) (*AWSProvider, error) {
	var lo []func(*config.LoadOptions) error
	if o.Region != "" {
		lo = append(lo, config.WithRegion(o.Region))
	}
	if o.MaxAttempts > 0 {
		lo = append(lo, config.WithRetryMaxAttempts(o.MaxAttempts))
	}
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return nil, fmt.Errorf("load aws config: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("aws-sm: no AWS region (set AWS_REGION or the region option)")
	}
	client := secretsmanager.NewFromConfig(cfg, func(so *secretsmanager.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
	})
	return &AWSProvider{api: client}, nil
}

// NewAWSProviderWithClient uses an existing client.
func NewAWSProviderWithClient(api SecretsManagerAPI) *AWSProvider { return &AWSProvider{api: api} }

// Fetch reads both stages.
func (p *AWSProvider) Fetch(ctx context.Context, ref Ref) (Fetched, error) {
	cur, err := p.get(ctx, ref, StageCurrent)
	if err != nil {
		return Fetched{}, err
	}
	f := Fetched{Current: cur}
	prev, err := p.get(ctx, ref, StagePrevious)
	var nf *types.ResourceNotFoundException
	switch {
	case err == nil:
		f.Previous = &prev
	case errors.As(err, &nf):
	default:
		return Fetched{}, err
	}
	return f, nil
}

func (p *AWSProvider) get(ctx context.Context, ref Ref, stage string) (Version, error) {
	out, err := p.api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId:     aws.String(ref.Name),
		VersionStage: aws.String(stage),
	})
	if err != nil {
		return Version{}, fmt.Errorf("aws-sm get %s (%s): %w", ref.Name, stage, err)
	}
	var raw []byte
	switch {
	case out.SecretString != nil:
		raw = []byte(*out.SecretString)
	case out.SecretBinary != nil:
		raw = out.SecretBinary
	default:
		return Version{}, fmt.Errorf("aws-sm get %s (%s): no value", ref.Name, stage)
	}
	if ref.Field != "" {
		raw, err = jsonField(raw, ref.Field)
		if err != nil {
			return Version{}, fmt.Errorf("aws-sm %s (%s): %w", ref.Name, stage, err)
		}
	}
	if len(raw) == 0 {
		return Version{}, fmt.Errorf("aws-sm %s (%s): empty value", ref.Name, stage)
	}
	id := aws.ToString(out.VersionId)
	if id == "" {
		id = ContentID(raw)
	}
	return Version{ID: id, Value: NewSecret(raw)}, nil
}

// jsonField returns a string field of a JSON object. The error never quotes
// the document.
func jsonField(doc []byte, field string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil, errors.New("value is not a JSON object")
	}
	v, ok := m[field]
	if !ok {
		return nil, fmt.Errorf("field %q not found", field)
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, fmt.Errorf("field %q is not a string", field)
	}
	return []byte(s), nil
}
