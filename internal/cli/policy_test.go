package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestPolicy(t *testing.T) {
	var out, errOut bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"policy", "-c", "../../examples/rampart.yaml"})
	if err := root.Execute(); err != nil {
		t.Fatalf("policy: %v\n%s", err, errOut.String())
	}
	rows := map[string]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		if cells := strings.Split(line, " | "); len(cells) > 1 {
			rows[strings.TrimPrefix(cells[0], "| ")] = line
		}
	}
	for route, want := range map[string][]string{
		"health":           {"| none |", "| - |"},
		"simulation":       {"API key", "30/min per client IP before authentication", "60/min per API key (`simulation`)", "(`writes`, POST only)"},
		"metrics":          {"| read |", "30/min per API key (`metrics`)"},
		"ws":               {"single-use ticket", "10 connections per caller, 1000 in total"},
		"WebSocket ticket": {"`/.rampart/ws/ticket`", "| API key |"},
	} {
		for _, w := range want {
			if !strings.Contains(rows[route], w) {
				t.Errorf("row %s lacks %q:\n%s", route, w, rows[route])
			}
		}
	}
	if strings.Contains(rows["health"], "per API key") {
		t.Errorf("a per-key limit is listed on an anonymous route: %s", rows["health"])
	}
}
