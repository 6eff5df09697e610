package audit

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Count(s.b.Bytes(), []byte("\n"))
}

func TestTailFollowsAcrossRotation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	fs, err := OpenFile(FileOptions{Dir: dir, SealKeys: sealKeys, Encrypt: true, EncryptionKeys: encKeys, MaxSegmentBytes: 1500})
	must(t, err)
	ctx := context.Background()
	must(t, fs.Write(ctx, entries(t, testEvent(0), testEvent(1))))

	out := &syncBuffer{}
	tctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- Tail(tctx, dir, out, TailOptions{Keys: encKeys, Poll: time.Millisecond}) }()
	waitLines(t, out, 2)
	for i := 2; i < 20; i++ {
		must(t, fs.Write(ctx, entries(t, testEvent(i))))
	}
	must(t, fs.Close())
	waitLines(t, out, 20)
	cancel()
	must(t, <-done)
	if len(segPaths(t, dir)) < 3 {
		t.Fatal("test did not rotate")
	}
	got := decodeExport(t, out.b.Bytes())
	for i, ev := range got {
		if ev.RequestID != testEvent(i).RequestID {
			t.Fatalf("line %d: %s", i, ev.RequestID)
		}
	}
}

// waitLines waits (bounded) until out has n lines.
func waitLines(t *testing.T, out *syncBuffer, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for out.lines() < n {
		if time.Now().After(deadline) {
			t.Fatalf("tail printed %d lines, want %d", out.lines(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func FuzzParseLine(f *testing.F) {
	dir := writeLog(f, FileOptions{Encrypt: true, EncryptionKeys: encKeys}, 3, 3)
	for _, p := range segPaths(f, dir) {
		for _, l := range readLines(f, p) {
			f.Add(bytes.TrimSuffix(l, []byte("\n")))
		}
	}
	f.Add([]byte(`{"seq":1,"prev":"","ev":{},"hash":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := parseLine(b)
		if err != nil || l.Seq == 0 {
			return
		}
		if r, err := l.record(); err == nil {
			_ = r.computeHash()
			_, _ = decoder{keys: encKeys}.event(l)
		}
	})
}

func FuzzVerifySegment(f *testing.F) {
	dir := writeLog(f, FileOptions{}, 4, 2)
	for _, p := range segPaths(f, dir) {
		b, _ := readFileBytes(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v := &verifier{keys: sealKeys, next: 1, seg: 1}
		v.segment(segFile{idx: 1}, data, true)
	})
}
