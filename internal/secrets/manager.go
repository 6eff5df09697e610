package secrets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Spec names one secret the gateway needs and where it comes from.
type Spec struct {
	// Name is the logical name used in logs, metrics and audit events,
	// e.g. "api_key_pepper".
	Name string
	// Ref is the reference as written in the config (see ParseRef).
	Ref string
	// MinBytes overrides the policy's minimum length (0: MinBytes, 32).
	MinBytes int
}

// Ticker is the part of *time.Ticker the manager uses, so tests drive it.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

type timeTicker struct{ t *time.Ticker }

func (t timeTicker) C() <-chan time.Time { return t.t.C }
func (t timeTicker) Stop()               { t.t.Stop() }

// Options configures a Manager.
type Options struct {
	// Production refuses inline secrets and weak values; development warns.
	Production bool
	// Interval between refreshes in Run; 0 means only explicit Refresh calls.
	Interval time.Duration
	// NewTicker defaults to time.NewTicker.
	NewTicker func(time.Duration) Ticker
	// Logger defaults to slog.Default(). Values are never logged.
	Logger *slog.Logger
	// Registerer, when set, gets rampart_secret_refresh_failures_total{secret}
	// and rampart_secret_rotations_total{secret}.
	Registerer prometheus.Registerer
	// OnRotate is called after a secret's current version changed, with the
	// new version ID (never the value): the hook for an audit event.
	OnRotate func(name, versionID string)
	// OnChange is called after a secret's keyring changed in any way: a
	// new current version (OnRotate follows) or a previous version that
	// appeared or was dropped, such as the end of a rotation's overlap.
	// Whatever copies keys out of a keyring resynchronises here.
	OnChange func(name string)
	// OnRefreshError is called when a refresh of name failed and its last
	// good value was kept.
	OnRefreshError func(name string, err error)
	// Providers overrides the provider for a scheme. Missing ones are built
	// on first use: env, file, inline, aws-sm (from AWS), vault (from Vault).
	Providers map[Scheme]Provider
	// AWS configures the default aws-sm provider.
	AWS AWSOptions
	// Vault configures the default vault provider.
	Vault VaultOptions
}

type entry struct {
	spec Spec
	ref  Ref
	ring *Keyring
	// providerPrev is whether the ring's previous version came from the
	// provider (NAME_PREVIOUS, FILE.previous, AWSPREVIOUS) rather than
	// being the remembered old current.
	providerPrev bool
}

// Manager resolves named secrets into keyrings and keeps them fresh.
type Manager struct {
	opts      Options
	log       *slog.Logger
	entries   []*entry
	byName    map[string]*entry
	providers map[Scheme]Provider
	warnings  []string

	refreshMu sync.Mutex
	failures  *prometheus.CounterVec
	rotations *prometheus.CounterVec
}

// Open parses every reference, reads every secret once and applies the
// policy. In production an inline or weak secret, or any provider failure, is
// an error naming the secret (never its value); all problems are joined. In
// development weak and inline secrets are logged as warnings and listed by
// Warnings.
func Open(ctx context.Context, specs []Spec, opts Options) (*Manager, error) {
	m := &Manager{
		opts:      opts,
		log:       opts.Logger,
		byName:    make(map[string]*entry, len(specs)),
		providers: make(map[Scheme]Provider),
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	for s, p := range opts.Providers {
		m.providers[s] = p
	}
	if err := m.registerMetrics(); err != nil {
		return nil, err
	}
	var errs []error
	for _, spec := range specs {
		if spec.Name == "" {
			errs = append(errs, errors.New("secret with an empty name"))
			continue
		}
		if _, dup := m.byName[spec.Name]; dup {
			errs = append(errs, fmt.Errorf("secret %q: defined twice", spec.Name))
			continue
		}
		ref, err := ParseRef(spec.Ref)
		if err != nil {
			errs = append(errs, fmt.Errorf("secret %q: %w", spec.Name, err))
			continue
		}
		if err := ref.Allowed(opts.Production); err != nil {
			errs = append(errs, fmt.Errorf("secret %q: %w", spec.Name, err))
			continue
		}
		if ref.IsInline() {
			m.warn(spec.Name, "secret is written inline in the config; use env:, file:, aws-sm: or vault: in production")
		}
		e := &entry{spec: spec, ref: ref}
		f, err := m.fetch(ctx, ref)
		if err != nil {
			errs = append(errs, fmt.Errorf("secret %q (%s): %w", spec.Name, ref, err))
			continue
		}
		if err := m.policy(spec, f); err != nil {
			errs = append(errs, err)
			continue
		}
		e.ring = NewKeyring(f.Current, f.Previous)
		e.providerPrev = f.Previous != nil
		m.entries = append(m.entries, e)
		m.byName[spec.Name] = e
		if m.failures != nil {
			m.failures.WithLabelValues(spec.Name)
			m.rotations.WithLabelValues(spec.Name)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Manager) warn(name, msg string) {
	m.warnings = append(m.warnings, fmt.Sprintf("secret %q: %s", name, msg))
	m.log.Warn("weak secret configuration", "secret", name, "problem", msg)
}

// policy refuses (production) or warns about (development) weak values. The
// previous version is not checked: it is on its way out.
func (m *Manager) policy(spec Spec, f Fetched) error {
	minBytes := spec.MinBytes
	if minBytes == 0 {
		minBytes = MinBytes
	}
	problems := CheckMin(spec.Name, f.Current.Value.Bytes(), minBytes)
	if len(problems) == 0 {
		return nil
	}
	if !m.opts.Production {
		for _, p := range problems {
			m.warn(spec.Name, strings.TrimPrefix(p.Message, fmt.Sprintf("secret %q ", spec.Name)))
		}
		return nil
	}
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = errors.New(p.Message)
	}
	return errors.Join(errs...)
}

func (m *Manager) registerMetrics() error {
	if m.opts.Registerer == nil {
		return nil
	}
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_secret_refresh_failures_total",
		Help: "Secret refreshes that failed; the last good value was kept.",
	}, []string{"secret"})
	rotations := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_secret_rotations_total",
		Help: "Times a secret's current version changed.",
	}, []string{"secret"})
	var err error
	if m.failures, err = registerCounter(m.opts.Registerer, failures); err != nil {
		return err
	}
	if m.rotations, err = registerCounter(m.opts.Registerer, rotations); err != nil {
		return err
	}
	return nil
}

func registerCounter(r prometheus.Registerer, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	if err := r.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing, nil
			}
		}
		return nil, fmt.Errorf("register secret metrics: %w", err)
	}
	return c, nil
}

func (m *Manager) provider(ctx context.Context, s Scheme) (Provider, error) {
	if p, ok := m.providers[s]; ok {
		return p, nil
	}
	var p Provider
	switch s {
	case SchemeEnv:
		p = EnvProvider{}
	case SchemeFile:
		p = FileProvider{}
	case SchemeInline:
		p = InlineProvider{}
	case SchemeAWS:
		ap, err := NewAWSProvider(ctx, m.opts.AWS)
		if err != nil {
			return nil, err
		}
		p = ap
	case SchemeVault:
		vp, err := NewVaultProvider(m.opts.Vault)
		if err != nil {
			return nil, err
		}
		p = vp
	default:
		return nil, fmt.Errorf("no provider for scheme %q", s)
	}
	m.providers[s] = p
	return p, nil
}

func (m *Manager) fetch(ctx context.Context, ref Ref) (Fetched, error) {
	p, err := m.provider(ctx, ref.Scheme)
	if err != nil {
		return Fetched{}, err
	}
	f, err := p.Fetch(ctx, ref)
	if err != nil {
		return Fetched{}, err
	}
	if f.Current.Value.IsZero() {
		return Fetched{}, errors.New("provider returned an empty value")
	}
	return f, nil
}

// Keyring returns the keyring of a secret named in Open, or nil.
func (m *Manager) Keyring(name string) *Keyring {
	if e, ok := m.byName[name]; ok {
		return e.ring
	}
	return nil
}

// Names lists the managed secrets in Open order.
func (m *Manager) Names() []string {
	names := make([]string, len(m.entries))
	for i, e := range m.entries {
		names[i] = e.spec.Name
	}
	return names
}

// Warnings are the development-mode policy warnings found by Open.
func (m *Manager) Warnings() []string { return append([]string(nil), m.warnings...) }

// Refresh re-reads every secret now (wire it to SIGHUP). A secret whose read
// fails, or whose new value fails the policy in production, keeps its last
// good keyring; the failure is counted, logged, passed to OnRefreshError and
// returned (joined). A changed current version becomes current, with the
// provider's previous version or else the old current as previous, and is
// counted and passed to OnRotate. A previous version the provider reported
// and no longer does is dropped: the operator ended the overlap. One
// remembered from the old current stays until the next rotation. Every
// change to a keyring is passed to OnChange. Concurrent calls run one at a
// time.
func (m *Manager) Refresh(ctx context.Context) error {
	m.refreshMu.Lock()
	defer m.refreshMu.Unlock()
	type result struct {
		f   Fetched
		err error
	}
	seen := make(map[string]result)
	var errs []error
	for _, e := range m.entries {
		if e.ref.IsInline() {
			continue
		}
		key := e.ref.String()
		r, ok := seen[key]
		if !ok {
			r.f, r.err = m.fetch(ctx, e.ref)
			seen[key] = r
		}
		err := r.err
		if err == nil {
			err = m.policy(e.spec, r.f)
		}
		if err != nil {
			err = fmt.Errorf("refresh secret %q (%s): %w", e.spec.Name, e.ref, err)
			m.failed(e.spec.Name, err)
			errs = append(errs, err)
			continue
		}
		m.apply(e, r.f)
	}
	return errors.Join(errs...)
}

func (m *Manager) failed(name string, err error) {
	if m.failures != nil {
		m.failures.WithLabelValues(name).Inc()
	}
	m.log.Warn("secret refresh failed, keeping last good value", "secret", name, "error", err.Error())
	if m.opts.OnRefreshError != nil {
		m.opts.OnRefreshError(name, err)
	}
}

func (m *Manager) apply(e *entry, f Fetched) {
	old := e.ring.p.Load()
	rotated := old.current.ID != f.Current.ID || !old.current.Value.Equal(f.Current.Value)
	prev := f.Previous
	if prev == nil {
		switch {
		case rotated:
			c := old.current
			prev = &c
		case !e.providerPrev:
			prev = old.previous // the remembered old current stays until the next rotation
		default:
			// The provider no longer reports the previous version it did:
			// the operator ended the overlap, so the old version goes.
		}
	}
	samePrev := (prev == nil) == (old.previous == nil) &&
		(prev == nil || (prev.ID == old.previous.ID && prev.Value.Equal(old.previous.Value)))
	if !rotated && samePrev {
		if f.Previous != nil {
			e.providerPrev = true
		}
		return
	}
	e.ring.store(f.Current, prev)
	e.providerPrev = f.Previous != nil
	if m.opts.OnChange != nil {
		m.opts.OnChange(e.spec.Name)
	}
	if !rotated {
		return
	}
	if m.rotations != nil {
		m.rotations.WithLabelValues(e.spec.Name).Inc()
	}
	m.log.Info("secret rotated", "secret", e.spec.Name, "version", f.Current.ID)
	if m.opts.OnRotate != nil {
		m.opts.OnRotate(e.spec.Name, f.Current.ID)
	}
}

// Run refreshes on every Interval tick until ctx is done, then returns nil.
// Failures are handled as in Refresh.
func (m *Manager) Run(ctx context.Context) error {
	if m.opts.Interval <= 0 {
		<-ctx.Done()
		return nil
	}
	newTicker := m.opts.NewTicker
	if newTicker == nil {
		newTicker = func(d time.Duration) Ticker { return timeTicker{time.NewTicker(d)} }
	}
	t := newTicker(m.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			_ = m.Refresh(ctx) // each failure is already logged, counted and reported
		}
	}
}
