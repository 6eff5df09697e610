package audit

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestConfigEventMasksSecrets(t *testing.T) {
	old := map[string]string{"server.listen": ":8443", "auth.jwt_secret": "s3cr3t-old", "cors.origins": "https://a.example", "store.postgres_url": "postgres://u:p@db/x"}
	cur := map[string]string{"server.listen": ":9443", "auth.jwt_secret": "s3cr3t-new", "cors.origins": "https://a.example", "redis.password": "pw"}
	tests := []struct {
		name string
		old  map[string]string
		want Event
	}{
		{"reloaded", old, Event{Type: TypeConfigReloaded, Outcome: OutcomeOK, Details: map[string]any{"changed": []SettingChange{
			{Setting: "auth.jwt_secret", Old: Masked, New: Masked},
			{Setting: "redis.password", New: Masked},
			{Setting: "server.listen", Old: ":8443", New: ":9443"},
			{Setting: "store.postgres_url", Old: Masked},
		}}}},
		{"loaded", nil, Event{Type: TypeConfigLoaded, Outcome: OutcomeOK, Details: map[string]any{"changed": []SettingChange{
			{Setting: "auth.jwt_secret", New: Masked},
			{Setting: "cors.origins", New: "https://a.example"},
			{Setting: "redis.password", New: Masked},
			{Setting: "server.listen", New: ":9443"},
		}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ConfigEvent(tc.old, cur, nil)
			if diff := cmp.Diff(tc.want, got, addrCmp); diff != "" {
				t.Fatal(diff)
			}
			e, err := encode(got, time.Now)
			must(t, err)
			for _, secret := range []string{"s3cr3t", "u:p@db", `"pw"`} {
				if strings.Contains(string(e.JSON), secret) {
					t.Fatalf("secret %q in %s", secret, e.JSON)
				}
			}
		})
	}
}

// enqueueRecorder is a fake Enqueuer; full makes it refuse.
type enqueueRecorder struct {
	mu   sync.Mutex
	evs  []Event
	full bool
}

func (r *enqueueRecorder) Enqueue(_ context.Context, ev Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.full {
		return ErrQueueFull
	}
	r.evs = append(r.evs, ev)
	return nil
}

func TestAggregatorOneEventPerSubjectPerMinute(t *testing.T) {
	clock := newClock()
	out := &enqueueRecorder{}
	a := NewAggregator(out, clock.Now, 3)
	ip := netip.MustParseAddr("198.51.100.9")
	ctx := context.Background()
	for range 1000 {
		a.Observe(Violation{Subject: "key_1", Rule: "write", Route: "simulation", SourceIP: ip})
	}
	for i := range 10 { // 10 distinct subjects, only 3 tracked
		a.Observe(Violation{Subject: fmt.Sprintf("ip_%d", i), Rule: "auth", SourceIP: ip})
	}
	must(t, a.Flush(ctx))
	if len(out.evs) != 0 {
		t.Fatal("current minute emitted before it ended")
	}
	clock.Add(time.Minute)
	a.Observe(Violation{Subject: "key_1", Rule: "write"})

	out.full = true
	if err := a.Flush(ctx); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("flush into full queue: %v", err)
	}
	out.full = false
	must(t, a.Flush(ctx)) // retried, not dropped
	counts := map[string]any{}
	for _, ev := range out.evs {
		if ev.Type != TypeRateLimitViolation {
			t.Fatalf("type %s", ev.Type)
		}
		counts[ev.User+"/"+ev.Details["rule"].(string)] = ev.Details["count"]
	}
	want := map[string]any{"key_1/write": uint64(1000), "ip_0/auth": uint64(1), "ip_1/auth": uint64(1), OverflowSubject + "/auth": uint64(8)}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Fatalf("buckets (-want +got):\n%s", diff)
	}
	must(t, a.Close(ctx))
	if last := out.evs[len(out.evs)-1]; last.User != "key_1" || last.Details["count"] != uint64(1) {
		t.Fatalf("close did not emit the current minute: %+v", last)
	}
}
