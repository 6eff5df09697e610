package audit

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// agedLog writes one segment per simulated day.
func agedLog(t *testing.T, clock *fakeClock, days int, retention int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "audit")
	s, err := OpenFile(FileOptions{Dir: dir, SealKeys: sealKeys, Now: clock.Now, MaxSegmentAge: 24 * time.Hour, RetentionDays: retention})
	must(t, err)
	for d := range days {
		must(t, s.Write(context.Background(), entries(t, testEvent(2*d), testEvent(2*d+1))))
		clock.Add(24 * time.Hour)
	}
	must(t, s.Close())
	return dir
}

func TestPruneKeepsRestVerifiable(t *testing.T) {
	clock := newClock()
	dir := agedLog(t, clock, 10, 0)
	before := len(segPaths(t, dir))
	res, err := Prune(dir, sealKeys, clock.Now().Add(-5*24*time.Hour), clock.Now)
	must(t, err)
	if res.Segments == 0 || len(segPaths(t, dir)) != before-res.Segments {
		t.Fatalf("pruned %+v, %d -> %d segments", res, before, len(segPaths(t, dir)))
	}
	rep, err := Verify(dir, sealKeys)
	must(t, err)
	if !rep.OK() || rep.First != res.Next || rep.First == 1 {
		t.Fatalf("after prune: %+v", rep)
	}

	// The anchor is signed: editing it or removing it is reported.
	anchorPath := filepath.Join(dir, anchorName)
	orig, err := os.ReadFile(anchorPath)
	must(t, err)
	must(t, os.WriteFile(anchorPath, bytes.Replace(orig, []byte(`"next":`), []byte(`"next":1`), 1), 0o600))
	if rep, _ := Verify(dir, sealKeys); rep.OK() || rep.Problems[0].Kind != KindBadAnchor {
		t.Fatalf("edited anchor: %+v", rep)
	}
	must(t, os.Remove(anchorPath))
	if rep, _ := Verify(dir, sealKeys); rep.OK() || rep.Problems[0].Kind != KindMissing {
		t.Fatalf("removed anchor: %+v", rep)
	}
	must(t, os.WriteFile(anchorPath, orig, 0o600))

	// Pruning again and reopening the writer continue from the anchor.
	_, err = Prune(dir, sealKeys, clock.Now(), clock.Now)
	must(t, err)
	writeLog(t, FileOptions{Dir: dir, Now: clock.Now}, 3, 3)
	rep, err = Verify(dir, sealKeys)
	must(t, err)
	if !rep.OK() {
		t.Fatalf("%+v", rep)
	}
}

func TestRetentionPrunesAutomatically(t *testing.T) {
	clock := newClock()
	dir := agedLog(t, clock, 12, 3)
	rep, err := Verify(dir, sealKeys)
	must(t, err)
	if !rep.OK() {
		t.Fatalf("%+v", rep)
	}
	if n := len(segPaths(t, dir)); n > 5 {
		t.Fatalf("%d segments kept with 3-day retention", n)
	}
	if rep.First == 1 {
		t.Fatal("nothing pruned")
	}
}

func TestPruneRefusesTamperedSegment(t *testing.T) {
	clock := newClock()
	dir := agedLog(t, clock, 4, 0)
	p := segPaths(t, dir)[0]
	lines := readLines(t, p)
	n := len(lines) - 2
	lines[n] = bytes.Replace(lines[n], []byte(`"count":`), []byte(`"count":1`), 1)
	writeLines(t, p, lines)
	if _, err := Prune(dir, sealKeys, clock.Now(), clock.Now); err == nil {
		t.Fatal("pruned a segment whose seal does not verify")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal("evidence removed")
	}
}
