package check

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzScan feeds every file parser arbitrary input: no panics, and every
// finding points at a line of the input.
func FuzzScan(f *testing.F) {
	kinds := []Kind{KindDotEnv, KindCompose, KindKubernetes, KindRequirements, KindPackageJSON, KindConfig}
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*", "*", "*"))
	more, _ := filepath.Glob(filepath.Join("testdata", "*", "*", "k8s", "*"))
	for _, p := range append(seeds, more...) {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if k, ok := Detect(p, data); ok {
			for i, kk := range kinds {
				if kk == k {
					f.Add(uint8(i), data)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, k uint8, data []byte) {
		kind := kinds[int(k)%len(kinds)]
		fs, err := Scan("f", kind, data)
		if err != nil {
			return
		}
		lines := strings.Count(string(data), "\n") + 1
		for _, fi := range fs {
			if fi.Line < 1 || fi.Line > lines {
				t.Fatalf("%s finding on line %d of %d: %+v", kind, fi.Line, lines, fi)
			}
		}
	})
}
