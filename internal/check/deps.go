package check

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

var (
	pipName   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?`)
	commitRef = regexp.MustCompile(`@[0-9a-f]{40}\b|#[0-9a-f]{40}$|[#&]sha256=[0-9a-f]{64}`)
	exactNPM  = regexp.MustCompile(`^[=v]?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
)

// Requirements checks a pip requirements file: every requirement pinned
// with == (or ===), or a direct URL pinned to a commit or hash.
func Requirements(file string, data []byte) ([]Finding, error) {
	f := &findings{file: file}
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		lineNo := i + 1
		s := lines[i]
		for strings.HasSuffix(s, `\`) && i+1 < len(lines) {
			i++
			s = strings.TrimSuffix(s, `\`) + " " + lines[i]
		}
		s = stripPipComment(s)
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if strings.HasPrefix(s, "-") {
			opt, arg, _ := strings.Cut(s, " ")
			if opt != "-e" && opt != "--editable" {
				continue // -r, -c, --index-url, --hash, ...
			}
			arg = strings.TrimSpace(arg)
			if !commitRef.MatchString(arg) {
				f.add(IDUnpinnedPython, lineNo, "editable requirement %s is not pinned to a commit", redactURL(arg))
			}
			continue
		}
		req, _, _ := strings.Cut(s, ";") // environment markers
		req, _, _ = strings.Cut(req, " --")
		req = strings.TrimSpace(req)
		name := pipName.FindString(req)
		spec := strings.TrimSpace(req[len(name):])
		if name == "" {
			if strings.Contains(req, "://") && !commitRef.MatchString(req) {
				f.add(IDUnpinnedPython, lineNo, "requirement %s is not pinned to a commit or hash", redactURL(req))
			}
			continue
		}
		switch {
		case strings.HasPrefix(spec, "@"):
			if !commitRef.MatchString(spec) {
				f.add(IDUnpinnedPython, lineNo, "%s is installed from a URL without a pinned commit or hash", name)
			}
		case strings.HasPrefix(spec, "==="):
		case strings.HasPrefix(spec, "==") && !strings.Contains(spec, "*") && !strings.Contains(spec, ","):
		case spec == "":
			f.add(IDUnpinnedPython, lineNo, "%s has no version: pin it with ==", name)
		default:
			f.add(IDUnpinnedPython, lineNo, "%s%s is a range, not a pinned version", name, spec)
		}
	}
	return f.list, nil
}

// stripPipComment removes a # comment (at the start or after whitespace).
func stripPipComment(s string) string {
	if strings.HasPrefix(strings.TrimSpace(s), "#") {
		return ""
	}
	for i := 1; i < len(s); i++ {
		if s[i] == '#' && (s[i-1] == ' ' || s[i-1] == '\t') {
			return s[:i]
		}
	}
	return s
}

// redactURL drops credentials from a URL-ish requirement.
func redactURL(s string) string {
	if at := strings.Index(s, "@"); at >= 0 {
		if p := strings.Index(s, "://"); p >= 0 && p < at {
			return s[:p+3] + "…" + s[at:]
		}
	}
	return s
}

// PackageJSON checks package.json dependency versions: exact versions only.
// devDependencies are reported as low severity.
func PackageJSON(file string, data []byte) ([]Finding, error) {
	f := &findings{file: file}
	dec := json.NewDecoder(bytes.NewReader(data))
	lineAt := func(off int64) int { return bytes.Count(data[:off], []byte("\n")) + 1 }
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("%s: not a JSON object", file)
	}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		section, _ := kt.(string)
		switch section {
		case "dependencies", "devDependencies", "optionalDependencies":
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			continue
		}
		if t, err := dec.Token(); err != nil || t != json.Delim('{') {
			return nil, fmt.Errorf("%s: %s is not an object", file, section)
		}
		for dec.More() {
			nt, err := dec.Token()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			line := lineAt(dec.InputOffset())
			vt, err := dec.Token()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			name, _ := nt.(string)
			spec, ok := vt.(string)
			if !ok {
				return nil, fmt.Errorf("%s:%d: version of %s is not a string", file, line, name)
			}
			if npmPinned(spec) {
				continue
			}
			fi := f.add(IDUnpinnedNPM, line, "%s %q in %s is not an exact version", name, spec, section)
			if section == "devDependencies" {
				fi.Severity = Low
			}
		}
		if _, err := dec.Token(); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	return f.list, nil
}

func npmPinned(spec string) bool {
	spec = strings.TrimSpace(spec)
	for _, p := range []string{"file:", "link:", "workspace:", "portal:"} {
		if strings.HasPrefix(spec, p) {
			return true // local code, versioned with the repository
		}
	}
	if rest, ok := strings.CutPrefix(spec, "npm:"); ok {
		if at := strings.LastIndex(rest, "@"); at > 0 {
			return exactNPM.MatchString(rest[at+1:])
		}
		return false
	}
	if strings.Contains(spec, "://") || strings.HasPrefix(spec, "github:") || strings.HasPrefix(spec, "git+") ||
		(strings.Count(spec, "/") == 1 && !strings.ContainsAny(spec, " <>=^~*")) {
		if strings.HasSuffix(spec, ".tgz") || strings.HasSuffix(spec, ".tar.gz") {
			return true // a tarball URL names one artifact
		}
		return commitRef.MatchString(spec)
	}
	return exactNPM.MatchString(spec)
}
