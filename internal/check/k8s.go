package check

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"
)

// Kubernetes checks a (multi-document) manifest: container env values,
// ConfigMap data and committed Secret objects.
func Kubernetes(file string, data []byte) ([]Finding, error) {
	f := &findings{file: file}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		root := deref(docRoot(&doc))
		if root == nil || root.Kind != yaml.MappingNode {
			continue
		}
		kind := ""
		if k := mapGet(root, "kind"); k != nil {
			kind = k.Value
		}
		switch kind {
		case "Secret":
			f.k8sSecret(root)
		case "ConfigMap":
			if d := deref(mapGet(root, "data")); d != nil && d.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(d.Content); i += 2 {
					f.envVar(fromManifest, d.Content[i].Value, d.Content[i+1].Value, d.Content[i+1].Line)
				}
			}
		case "List":
			if items := mapGet(root, "items"); items != nil {
				f.k8sContainers(items)
			}
		default:
			f.k8sContainers(root)
		}
	}
	return f.list, nil
}

func (f *findings) k8sSecret(root *yaml.Node) {
	name := ""
	if md := mapGet(root, "metadata"); md != nil {
		if n := mapGet(md, "name"); n != nil {
			name = n.Value
		}
	}
	for _, field := range []string{"data", "stringData"} {
		d := deref(mapGet(root, field))
		if d == nil || d.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(d.Content); i += 2 {
			k, v := d.Content[i].Value, d.Content[i+1]
			val := v.Value
			if field == "data" {
				b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(val))
				if err != nil {
					continue
				}
				val = string(b)
			}
			f.add(IDSecretInManifest, v.Line, "Secret %s key %s is committed in the manifest", name, k)
			if val != "" && !isSecretRef(val) {
				f.secretValue(name+"/"+k, val, v.Line)
			}
		}
	}
}

// k8sContainers finds every container list below n and checks env values.
func (f *findings) k8sContainers(n *yaml.Node) {
	n = deref(n)
	if n == nil {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, deref(n.Content[i+1])
			if (k == "containers" || k == "initContainers" || k == "ephemeralContainers") && v.Kind == yaml.SequenceNode {
				for _, c := range v.Content {
					f.k8sEnv(deref(mapGet(deref(c), "env")))
				}
				continue
			}
			f.k8sContainers(v)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			f.k8sContainers(c)
		}
	}
}

func (f *findings) k8sEnv(env *yaml.Node) {
	if env == nil || env.Kind != yaml.SequenceNode {
		return
	}
	for _, e := range env.Content {
		e = deref(e)
		name, value := mapGet(e, "name"), deref(mapGet(e, "value"))
		if name == nil || value == nil || value.Kind != yaml.ScalarNode {
			continue // valueFrom (secretKeyRef, configMapKeyRef) is fine
		}
		f.envVar(fromManifest, name.Value, value.Value, value.Line)
	}
}
