package audit

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// memSink records batches; block, when set, holds Write until closed.
type memSink struct {
	mu      sync.Mutex
	batches [][]Entry
	entered chan struct{}
	block   chan struct{}
	err     error
	closed  bool
}

func (s *memSink) Write(_ context.Context, b []Entry) error {
	if s.entered != nil {
		s.entered <- struct{}{}
	}
	if s.block != nil {
		<-s.block
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.batches = append(s.batches, append([]Entry(nil), b...))
	return nil
}

func (s *memSink) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

func (s *memSink) sizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for _, b := range s.batches {
		out = append(out, len(b))
	}
	return out
}

func (s *memSink) count() int {
	n := 0
	for _, x := range s.sizes() {
		n += x
	}
	return n
}

// manualWindow is an injected Options.After: the test decides when the window ends.
type manualWindow struct {
	armed chan time.Duration
	fire  chan time.Time
}

func newManualWindow() *manualWindow {
	return &manualWindow{armed: make(chan time.Duration, 16), fire: make(chan time.Time)}
}

func (w *manualWindow) After(d time.Duration) <-chan time.Time {
	w.armed <- d
	return w.fire
}

func TestGroupCommitWindow(t *testing.T) {
	sink := &memSink{}
	win := newManualWindow()
	l, err := New(sink, Options{After: win.After})
	must(t, err)
	ctx := context.Background()
	for i := range 3 {
		must(t, l.Enqueue(ctx, testEvent(i)))
	}
	if d := <-win.armed; d != DefaultWindow {
		t.Fatalf("window %v", d)
	}
	if n := len(sink.sizes()); n != 0 {
		t.Fatalf("committed %d groups before the window ended", n)
	}
	win.fire <- time.Time{}
	must(t, l.Flush(ctx)) // nothing queued after the group: returns once it is durable
	if got := sink.sizes(); len(got) != 1 || got[0] != 3 {
		t.Fatalf("groups %v, want one group of 3", got)
	}
	if st := l.Stats(); st.Written != 3 || st.Groups != 1 || st.Queued != 0 {
		t.Fatalf("stats %+v", st)
	}
	must(t, l.Close(ctx))
	if !sink.closed {
		t.Fatal("sink not closed")
	}
}

func TestFlushCommitsWithoutWaitingForWindow(t *testing.T) {
	sink := &memSink{}
	win := newManualWindow()
	l, err := New(sink, Options{After: win.After})
	must(t, err)
	ctx := context.Background()
	must(t, l.Enqueue(ctx, testEvent(1)))
	<-win.armed
	must(t, l.Enqueue(ctx, testEvent(2)))
	must(t, l.Flush(ctx))
	if sink.count() != 2 {
		t.Fatalf("after flush: %v", sink.sizes())
	}
	must(t, l.Close(ctx))
}

func TestRecordWaitsForDurability(t *testing.T) {
	sink := &memSink{}
	l, err := New(sink, Options{Window: -1})
	must(t, err)
	ctx := context.Background()
	for i := range 5 {
		must(t, l.Record(ctx, testEvent(i)))
		if sink.count() != i+1 {
			t.Fatalf("Record returned before its event was written")
		}
	}
	must(t, l.Close(ctx))
}

func TestRecordReturnsSinkError(t *testing.T) {
	boom := errors.New("disk full")
	l, err := New(&memSink{err: boom}, Options{Window: -1})
	must(t, err)
	if err := l.Record(context.Background(), testEvent(1)); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if st := l.Stats(); st.Failed != 1 {
		t.Fatalf("%+v", st)
	}
	must(t, l.Close(context.Background()))
}

func TestQueueFull(t *testing.T) {
	sink := &memSink{entered: make(chan struct{}, 8), block: make(chan struct{})}
	l, err := New(sink, Options{QueueSize: 2, Window: -1, EnqueueTimeout: time.Millisecond})
	must(t, err)
	ctx := context.Background()
	must(t, l.Enqueue(ctx, testEvent(1)))
	<-sink.entered // the writer holds event 1 in a blocked Write
	must(t, l.Enqueue(ctx, testEvent(2)))
	if err := l.Enqueue(ctx, testEvent(3)); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("enqueue into full queue: %v", err)
	}
	if err := l.Record(ctx, testEvent(3)); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("record into full queue: %v", err)
	}
	if _, err := l.Reserve(ctx); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("reserve in full queue: %v", err)
	}
	if st := l.Stats(); st.Queued != 2 || st.Rejected != 3 {
		t.Fatalf("stats %+v", st)
	}
	close(sink.block)
	must(t, l.Close(ctx))
	if sink.count() != 2 {
		t.Fatalf("accepted events lost: %v", sink.sizes())
	}
}

func TestInvalidEvent(t *testing.T) {
	l, err := New(&memSink{}, Options{})
	must(t, err)
	defer l.Close(context.Background())
	for _, ev := range []Event{{}, {Type: "x", Details: map[string]any{"f": func() {}}}} {
		if err := l.Record(context.Background(), ev); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("got %v", err)
		}
	}
	if st := l.Stats(); st.Queued != 0 {
		t.Fatalf("slot leaked: %+v", st)
	}
}

func TestReservationRelease(t *testing.T) {
	l, err := New(&memSink{}, Options{QueueSize: 1, EnqueueTimeout: time.Millisecond})
	must(t, err)
	ctx := context.Background()
	r, err := l.Reserve(ctx)
	must(t, err)
	if _, err := l.Reserve(ctx); !errors.Is(err, ErrQueueFull) {
		t.Fatal("second reservation in a queue of one")
	}
	r.Release()
	r.Release()
	r, err = l.Reserve(ctx)
	must(t, err)
	must(t, r.Record(ctx, testEvent(1)))
	r.Release() // no-op after use
	must(t, l.Close(ctx))
}

func TestCloseDrainsEverythingAccepted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	fs, err := OpenFile(FileOptions{Dir: dir, SealKeys: sealKeys, Encrypt: true, EncryptionKeys: encKeys})
	must(t, err)
	l, err := New(fs, Options{})
	must(t, err)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 250 {
				if err := l.Enqueue(ctx, testEvent(g*1000+i)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	must(t, l.Close(ctx))
	if err := l.Enqueue(ctx, testEvent(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("enqueue after close: %v", err)
	}
	rep, err := Verify(dir, sealKeys)
	must(t, err)
	if !rep.OK() || rep.Records != 1000 || len(rep.Notes) != 0 {
		t.Fatalf("%+v", rep)
	}
	var out bytes.Buffer
	must(t, Export(ctx, dir, &out, ExportOptions{Keys: encKeys}))
	if n := bytes.Count(out.Bytes(), []byte("\n")); n != 1000 {
		t.Fatalf("exported %d", n)
	}
}

func TestCloseWaitsForReservations(t *testing.T) {
	sink := &memSink{}
	l, err := New(sink, Options{Window: -1})
	must(t, err)
	ctx := context.Background()
	r, err := l.Reserve(ctx)
	must(t, err)
	closed := make(chan error)
	go func() { closed <- l.Close(ctx) }()
	must(t, r.Record(ctx, testEvent(1)))
	must(t, <-closed)
	if sink.count() != 1 {
		t.Fatal("reserved event lost on close")
	}
}

func TestStreamSinkAndTee(t *testing.T) {
	var a, b bytes.Buffer
	l, err := New(Tee(NewStreamSink(&a), NewStreamSink(&b)), Options{Window: -1})
	must(t, err)
	must(t, l.Record(context.Background(), testEvent(1)))
	must(t, l.Close(context.Background()))
	if a.String() != b.String() || !bytes.Contains(a.Bytes(), []byte(`"event_type":"request","user":"key_abc123","source_ip":"10.0.1.50"`)) {
		t.Fatalf("%q %q", a.String(), b.String())
	}
}
