package check

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Kind is a file type the checker understands.
type Kind string

// Kinds.
const (
	KindDotEnv       Kind = "dotenv"
	KindCompose      Kind = "compose"
	KindKubernetes   Kind = "kubernetes"
	KindRequirements Kind = "requirements"
	KindPackageJSON  Kind = "package.json"
	KindConfig       Kind = "config"
)

// ErrUnknownKind is returned for an explicit file the checker cannot place.
var ErrUnknownKind = errors.New("not a .env, docker-compose, Kubernetes, requirements.txt or package.json file")

// Options says what Run reads.
type Options struct {
	// ConfigFile is rampart's config (rampart check -c); empty skips it.
	ConfigFile string
	// Paths are files or directories. Directories are searched recursively
	// for files the checker knows (templates such as .env.example are
	// skipped; name them explicitly to check them). No paths and no config
	// file means the current directory.
	Paths []string
	// ConfigCheck, when set, replaces Config for the config file (to add
	// typed validation); its findings are merged like the others.
	ConfigCheck func(file string, data []byte) ([]Finding, error)
}

// Run checks everything opts names and returns the findings sorted. Files
// that cannot be read or parsed are errors.
func Run(opts Options) ([]Finding, error) {
	var all []Finding
	var errs []error
	if opts.ConfigFile != "" {
		data, err := os.ReadFile(opts.ConfigFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("read config: %w", err))
		} else {
			check := opts.ConfigCheck
			if check == nil {
				check = Config
			}
			found, err := check(opts.ConfigFile, data)
			errs = append(errs, err)
			all = append(all, found...)
		}
	}
	paths := opts.Paths
	if len(paths) == 0 && opts.ConfigFile == "" {
		paths = []string{"."}
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		files := []string{p}
		explicit := true
		if st.IsDir() {
			if files, err = Discover(p); err != nil {
				errs = append(errs, err)
				continue
			}
			explicit = false
		}
		for _, file := range files {
			found, err := scanFile(file, explicit)
			errs = append(errs, err)
			all = append(all, found...)
		}
	}
	return Sort(all), errors.Join(errs...)
}

func scanFile(path string, explicit bool) ([]Finding, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	kind, ok := Detect(path, data)
	if !ok {
		if !explicit {
			return nil, nil
		}
		var probe yaml.Node
		if err := yaml.Unmarshal(data, &probe); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return nil, fmt.Errorf("%s: %w", path, ErrUnknownKind)
	}
	return Scan(path, kind, data)
}

// Scan checks data as a file of the given kind; name is used in findings.
func Scan(name string, kind Kind, data []byte) ([]Finding, error) {
	switch kind {
	case KindDotEnv:
		return DotEnv(name, data)
	case KindCompose:
		return Compose(name, data)
	case KindKubernetes:
		return Kubernetes(name, data)
	case KindRequirements:
		return Requirements(name, data)
	case KindPackageJSON:
		return PackageJSON(name, data)
	case KindConfig:
		return Config(name, data)
	}
	return nil, fmt.Errorf("%s: %w", name, ErrUnknownKind)
}

// DotEnv checks a .env file.
func DotEnv(file string, data []byte) ([]Finding, error) {
	vars, err := ParseDotEnv(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	f := &findings{file: file}
	for _, v := range vars {
		f.envVar(fromDotEnv, v.Key, v.Value, v.Line)
	}
	return f.list, nil
}

// Detect names a file's kind from its name, and for other YAML files from
// its content (a services mapping, or apiVersion and kind).
func Detect(path string, data []byte) (Kind, bool) {
	base := strings.ToLower(filepath.Base(path))
	ext := filepath.Ext(base)
	switch {
	case base == ".env" || strings.HasPrefix(base, ".env.") || ext == ".env":
		return KindDotEnv, true
	case base == "package.json":
		return KindPackageJSON, true
	case strings.HasPrefix(base, "requirements") && (ext == ".txt" || ext == ".in"):
		return KindRequirements, true
	case ext != ".yml" && ext != ".yaml":
		return "", false
	case strings.HasPrefix(base, "docker-compose") || strings.HasPrefix(base, "compose"):
		return KindCompose, true
	}
	var probe yaml.Node
	if err := yaml.Unmarshal(data, &probe); err != nil {
		return "", false // templates (Helm) and broken files are not guessed at
	}
	root := deref(docRoot(&probe))
	if s := mapGet(root, "services"); s != nil && deref(s).Kind == yaml.MappingNode {
		return KindCompose, true
	}
	if mapGet(root, "apiVersion") != nil && mapGet(root, "kind") != nil {
		return KindKubernetes, true
	}
	return "", false
}

var skipDirs = map[string]bool{".git": true, "node_modules": true, "vendor": true, ".venv": true, "venv": true, "__pycache__": true, ".tox": true, "dist": true, "build": true}

// Discover lists the files below dir the checker knows, skipping
// dependency and VCS directories and templates (*.example, *.sample,
// *.template, *.dist).
func Discover(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && skipDirs[d.Name()] {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		name := strings.ToLower(d.Name())
		for _, t := range []string{".example", ".sample", ".template", ".dist", ".tmpl"} {
			if strings.HasSuffix(name, t) {
				return nil
			}
		}
		ext := filepath.Ext(name)
		if name == ".env" || strings.HasPrefix(name, ".env.") || ext == ".env" || name == "package.json" ||
			(strings.HasPrefix(name, "requirements") && (ext == ".txt" || ext == ".in")) {
			out = append(out, p)
			return nil
		}
		if ext == ".yml" || ext == ".yaml" {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if _, ok := Detect(p, data); ok {
				out = append(out, p)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", dir, err)
	}
	return out, nil
}
