package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts every environment override: RAMPART_SERVER_LISTEN
// overrides server.listen.
const EnvPrefix = "RAMPART_"

// Load reads the YAML file at path on top of Default, then applies RAMPART_*
// overrides from environ (os.Environ() form), then validates. Unknown keys and
// type errors do not stop the reading: they are reported together with every
// validation problem, so one run shows everything to fix. Warnings are the
// checklist rules that production mode would refuse.
func Load(path string, environ []string) (cfg Config, warnings []string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, nil, fmt.Errorf("read config: %w", err)
	}
	cfg, perr := Parse(data)
	var typeErr *yaml.TypeError
	if perr != nil && !errors.As(perr, &typeErr) {
		return Config{}, nil, perr
	}
	var errs []error
	if typeErr != nil {
		for _, e := range typeErr.Errors {
			errs = append(errs, errors.New(e))
		}
	}
	if err := ApplyEnv(&cfg, environ); err != nil {
		errs = append(errs, err)
	}
	warnings, verr := cfg.Validate()
	if verr != nil {
		errs = append(errs, verr)
	}
	return cfg, warnings, errors.Join(errs...)
}

// Parse decodes YAML on top of Default. Unknown keys and values of the wrong
// type are returned as a *yaml.TypeError naming each key and its line, together
// with the config decoded from the rest of the document.
func Parse(data []byte) (Config, error) {
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		var typeErr *yaml.TypeError
		if errors.As(err, &typeErr) {
			// The rest of the document was decoded; the caller decides.
			return cfg, err
		}
		return Config{}, fmt.Errorf("parse config: %w", err)
	}
	// A second document would be silently ignored; refuse it instead.
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, errors.New("parse config: more than one YAML document")
	}
	return cfg, nil
}

// ApplyEnv overrides every scalar (and list of scalars, comma-separated) from
// RAMPART_* variables. Names are the YAML path in upper case joined by "_":
// tls.acme.email is RAMPART_TLS_ACME_EMAIL. The route table is file-only.
func ApplyEnv(cfg *Config, environ []string) error {
	env := make(map[string]string)
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, EnvPrefix) {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return nil
	}
	var errs []error
	walkScalars(reflect.ValueOf(cfg).Elem(), strings.TrimSuffix(EnvPrefix, "_"), func(name string, v reflect.Value) {
		raw, ok := env[name]
		if !ok {
			return
		}
		if err := setFromString(v, raw); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	})
	return errors.Join(errs...)
}

// EnvNames lists every environment variable ApplyEnv understands.
func EnvNames() []string {
	var names []string
	cfg := Default()
	walkScalars(reflect.ValueOf(&cfg).Elem(), strings.TrimSuffix(EnvPrefix, "_"), func(name string, _ reflect.Value) {
		names = append(names, name)
	})
	return names
}

func walkScalars(v reflect.Value, prefix string, fn func(name string, v reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		name := prefix + "_" + strings.ToUpper(tag)
		fv := v.Field(i)
		switch {
		case fv.Kind() == reflect.Struct:
			walkScalars(fv, name, fn)
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct:
			// lists of objects (routes) come from the file only
		default:
			fn(name, fv)
		}
	}
}

func setFromString(v reflect.Value, raw string) error {
	if v.Kind() == reflect.Slice {
		var items []string
		for _, s := range strings.Split(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		s := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, it := range items {
			if err := yamlScalar(s.Index(i), it); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	}
	return yamlScalar(v, raw)
}

// yamlScalar decodes raw as a YAML scalar of v's type, so environment values
// parse exactly like file values (durations, sizes, booleans).
func yamlScalar(v reflect.Value, raw string) error {
	node := &yaml.Node{Kind: yaml.ScalarNode, Value: raw}
	if v.Kind() == reflect.String {
		node.Tag = "!!str"
	}
	ptr := reflect.New(v.Type())
	if err := node.Decode(ptr.Interface()); err != nil {
		return fmt.Errorf("invalid value %q for %s", raw, v.Type())
	}
	v.Set(ptr.Elem())
	return nil
}

// Flatten lists every setting as "section.key" → value, for the audit
// event that records what a (re)load changed. Lists of objects (routes,
// rate-limit rules) are one entry each, in Go syntax.
func Flatten(cfg Config) map[string]string {
	out := map[string]string{}
	flatten(reflect.ValueOf(cfg), "", out)
	return out
}

func flatten(v reflect.Value, prefix string, out map[string]string) {
	t := v.Type()
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		name := tag
		if prefix != "" {
			name = prefix + "." + tag
		}
		fv := v.Field(i)
		switch {
		case fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeOf(time.Duration(0)):
			flatten(fv, name, out)
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct:
			for j := range fv.Len() {
				out[fmt.Sprintf("%s[%d]", name, j)] = fmt.Sprintf("%+v", fv.Index(j).Interface())
			}
		default:
			out[name] = fmt.Sprint(fv.Interface())
		}
	}
}
