package check

import (
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

var (
	wholeVar   = regexp.MustCompile(`^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])(.*))?\}|([A-Za-z_][A-Za-z0-9_]*))$`)
	anyVar     = regexp.MustCompile(`\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))`)
	datastores = map[string]bool{
		"postgres": true, "postgis": true, "redis": true, "redis-stack": true, "redis-stack-server": true, "valkey": true,
		"mysql": true, "mariadb": true, "mongo": true, "mongodb": true, "cassandra": true, "elasticsearch": true,
		"opensearch": true, "memcached": true, "rabbitmq": true, "kafka": true, "cp-kafka": true, "zookeeper": true,
		"cp-zookeeper": true, "minio": true, "timescaledb": true, "clickhouse-server": true,
	}
)

// Compose checks a docker-compose file: every service's environment and
// published datastore ports.
func Compose(file string, data []byte) ([]Finding, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	f := &findings{file: file}
	root := deref(docRoot(&doc))
	services := mapGet(root, "services")
	if services == nil || services.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: no services mapping", file)
	}
	for i := 0; i+1 < len(services.Content); i += 2 {
		name, svc := services.Content[i].Value, deref(services.Content[i+1])
		if svc.Kind != yaml.MappingNode {
			continue
		}
		f.composeEnv(deref(mapGet(svc, "environment")))
		if img := mapGet(svc, "image"); img != nil && isDatastoreImage(img.Value) {
			f.composePorts(name, deref(mapGet(svc, "ports")))
		}
	}
	return f.list, nil
}

func (f *findings) composeEnv(env *yaml.Node) {
	if env == nil {
		return
	}
	switch env.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(env.Content); i += 2 {
			k, v := env.Content[i], env.Content[i+1]
			if k.Value == "<<" {
				v = deref(v)
				if v.Kind == yaml.SequenceNode {
					for _, m := range v.Content {
						f.composeEnv(deref(m))
					}
				} else {
					f.composeEnv(v)
				}
				continue
			}
			v = deref(v)
			if v.Kind != yaml.ScalarNode {
				continue
			}
			if v.Tag == "!!null" {
				f.composeValue(k.Value, "${"+k.Value+"}", v.Line)
				continue
			}
			f.composeValue(k.Value, v.Value, v.Line)
		}
	case yaml.SequenceNode:
		for _, it := range env.Content {
			it = deref(it)
			if it.Kind != yaml.ScalarNode {
				continue
			}
			k, v, ok := strings.Cut(it.Value, "=")
			if !ok {
				v = "${" + k + "}"
			}
			f.composeValue(k, v, it.Line)
		}
	}
}

// composeValue classifies a value by its interpolation and checks it.
func (f *findings) composeValue(key, raw string, line int) {
	raw = strings.ReplaceAll(raw, "$$", "\x00") // escaped dollar: a literal
	if m := wholeVar.FindStringSubmatch(raw); m != nil {
		if strings.HasSuffix(m[2], "-") {
			f.envVar(fromComposeDefault, key, unescapeDollar(m[3]), line)
			return
		}
		if isSecretKey(key) {
			f.secret(fromComposeVar, strings.ToUpper(key), "", line)
		}
		return
	}
	val := anyVar.ReplaceAllStringFunc(raw, func(s string) string {
		sm := anyVar.FindStringSubmatch(s)
		if strings.HasSuffix(sm[2], "-") {
			return sm[3]
		}
		return interpolated
	})
	f.envVar(fromCompose, key, unescapeDollar(val), line)
}

func unescapeDollar(s string) string { return strings.ReplaceAll(s, "\x00", "$") }

func (f *findings) composePorts(service string, ports *yaml.Node) {
	if ports == nil || ports.Kind != yaml.SequenceNode {
		return
	}
	for _, p := range ports.Content {
		p = deref(p)
		var hostIP, published string
		switch p.Kind {
		case yaml.ScalarNode:
			hostIP, published = splitPort(p.Value)
		case yaml.MappingNode:
			if n := mapGet(p, "host_ip"); n != nil {
				hostIP = n.Value
			}
			if n := mapGet(p, "published"); n != nil {
				published = n.Value
			}
			if n := mapGet(p, "target"); published == "" && n != nil {
				published = n.Value
			}
		default:
			continue
		}
		if isLoopback(strings.Trim(hostIP, "[]")) && hostIP != "" {
			continue
		}
		f.add(IDDatastorePort, p.Line, "service %s publishes datastore port %s on all host interfaces", service, published)
	}
}

// splitPort parses the short syntax [IP:][HOST:]CONTAINER[/proto].
func splitPort(s string) (hostIP, published string) {
	s, _, _ = strings.Cut(s, "/")
	if strings.HasPrefix(s, "[") {
		if end := strings.Index(s, "]"); end > 0 {
			hostIP, s = s[:end+1], strings.TrimPrefix(s[end+1:], ":")
		}
	}
	parts := strings.Split(s, ":")
	switch len(parts) {
	case 1:
		return hostIP, parts[0]
	case 2:
		return hostIP, parts[0]
	default:
		return parts[0], parts[1]
	}
}

func isDatastoreImage(img string) bool {
	name := img
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	name, _, _ = strings.Cut(name, ":")
	name, _, _ = strings.Cut(name, "@")
	return datastores[strings.ToLower(name)]
}

func docRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		return doc.Content[0]
	}
	return doc
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func mapGet(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
