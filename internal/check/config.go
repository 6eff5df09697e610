package check

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/rampart-security/rampart/internal/secrets"
)

// Config checks rampart's own config file as generic YAML: inline secrets,
// development mode, debug switches, debug logging, wildcard or local CORS
// origins, and PostgreSQL/Redis URLs without TLS. Typed validation (unknown
// keys, production refusals) is config.Validate's job.
func Config(file string, data []byte) ([]Finding, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	f := &findings{file: file}
	f.configNode(deref(docRoot(&doc)), nil)
	return f.list, nil
}

// maxConfigDepth bounds how deep configNode walks: aliases can make a YAML
// document cyclic or exponentially wide, and a real config is a few levels.
const maxConfigDepth = 32

// maxConfigNodes bounds how many nodes one document may make configNode visit.
const maxConfigNodes = 100_000

func (f *findings) configNode(n *yaml.Node, path []string) {
	f.visited++
	if n == nil || len(path) > maxConfigDepth || f.visited > maxConfigNodes {
		return
	}
	switch n.Kind {
	case yaml.SequenceNode:
		for _, c := range n.Content {
			f.configNode(deref(c), path)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, deref(n.Content[i+1])
			p := append(append([]string(nil), path...), k)
			dotted := strings.Join(p, ".")
			if strings.Contains(strings.ToLower(k), "origin") {
				if v.Kind == yaml.SequenceNode {
					for _, it := range v.Content {
						it = deref(it)
						f.cors(dotted, []string{it.Value}, it.Line)
					}
				} else if v.Kind == yaml.ScalarNode {
					f.cors(dotted, splitList(v.Value), v.Line)
				}
			}
			if v.Kind == yaml.ScalarNode {
				f.configScalar(p, dotted, v)
				continue
			}
			f.configNode(v, p)
		}
	}
}

func (f *findings) configScalar(p []string, dotted string, v *yaml.Node) {
	k := strings.ToLower(p[len(p)-1])
	val := v.Value
	lv := strings.ToLower(val)
	parent := ""
	if len(p) > 1 {
		parent = strings.ToLower(p[len(p)-2])
	}
	switch {
	case k == "mode" && lv == "development":
		f.add(IDDevelopmentMode, v.Line, "%s: development relaxes every production refusal", dotted)
	case k == "debug" && truthy(lv):
		f.add(IDDebug, v.Line, "%s: true enables debug endpoints", dotted)
	case k == "level" && parent == "log" && (lv == "debug" || lv == "trace"):
		f.add(IDDebugLogLevel, v.Line, "%s: %s logs request details", dotted, val)
	}
	if val == "" || v.Tag == "!!bool" || v.Tag == "!!int" || v.Tag == "!!float" || v.Tag == "!!null" {
		return
	}
	if u, ok := parseServiceURL(val); ok {
		f.serviceURL(fromConfig, dotted, u, v.Line)
		return
	}
	if !isSecretKey(k) {
		return
	}
	ref, err := secrets.ParseRef(val)
	if err != nil || !ref.IsInline() {
		return
	}
	f.secret(fromConfig, dotted, string(ref.Inline().Bytes()), v.Line)
}
