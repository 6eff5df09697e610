package audit

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func testKey(id string, b byte) Key {
	return Key{ID: id, Secret: bytes.Repeat([]byte{b}, KeySize)}
}

var (
	sealKeys = Keyring{Current: testKey("seal-2026", 1)}
	encKeys  = Keyring{Current: testKey("enc-key-2026", 2)}
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 15, 10, 30, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testEvent(i int) Event {
	return Event{
		Timestamp: time.Date(2026, 1, 15, 10, 30, 0, i, time.UTC),
		Type:      TypeRequest,
		User:      "key_abc123",
		SourceIP:  netip.MustParseAddr("10.0.1.50"),
		RequestID: "req-" + itoa(i),
		Route:     "simulation",
		Outcome:   OutcomeOK,
		Details:   map[string]any{"method": "POST", "status": float64(201), "n": float64(i)},
	}
}

func itoa(i int) string {
	b := []byte{}
	if i == 0 {
		return "0"
	}
	for i > 0 {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
	}
	return string(b)
}

func entries(t testing.TB, evs ...Event) []Entry {
	t.Helper()
	out := make([]Entry, len(evs))
	for i, ev := range evs {
		e, err := encode(ev, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = e
	}
	return out
}

// writeLog writes n events in groups of per to a new log and closes it.
func writeLog(t testing.TB, o FileOptions, n, per int) string {
	t.Helper()
	if o.Dir == "" {
		o.Dir = filepath.Join(t.TempDir(), "audit")
	}
	if o.SealKeys.Empty() {
		o.SealKeys = sealKeys
	}
	s, err := OpenFile(o)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += per {
		var evs []Event
		for j := i; j < min(i+per, n); j++ {
			evs = append(evs, testEvent(j))
		}
		if err := s.Write(context.Background(), entries(t, evs...)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return o.Dir
}

func segPaths(t testing.TB, dir string) []string {
	t.Helper()
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range segs {
		out = append(out, filepath.Join(dir, s.name()))
	}
	return out
}

func readLines(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(b, []byte("\n"))
}

func writeLines(t testing.TB, path string, lines [][]byte) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFileBytes(path string) ([]byte, error) { return os.ReadFile(path) }
