package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	DefaultQueueSize      = 16384
	DefaultWindow         = 10 * time.Millisecond
	DefaultMaxBatch       = 4096
	DefaultEnqueueTimeout = 100 * time.Millisecond
)

// Errors returned by Logger.
var (
	// ErrQueueFull: the queue stayed full for Options.EnqueueTimeout. The
	// event was not recorded; an HTTP caller should answer 503.
	ErrQueueFull = errors.New("audit queue full")
	// ErrClosed: the Logger or sink is closed.
	ErrClosed = errors.New("audit log closed")
)

// Sink stores groups of events. Write must return only once every entry of
// the batch is durable (for files: written and fsync'd), and must leave no
// part of a batch it fails on. Write is called by one goroutine at a time.
type Sink interface {
	Write(ctx context.Context, batch []Entry) error
	Close() error
}

// Options configure a Logger. Zero values take the defaults.
type Options struct {
	// QueueSize bounds the events accepted but not yet durable (default 16384).
	QueueSize int
	// Window is how long the writer collects a group after its first event
	// before one Write+fsync (default 10 ms). A negative Window commits as soon
	// as the queue is drained: lowest latency, groups then form only while the
	// previous fsync runs.
	Window time.Duration
	// MaxBatch commits a group early when it reaches this many events (default 4096).
	MaxBatch int
	// EnqueueTimeout is how long Record, Enqueue and Reserve wait for room in
	// a full queue before ErrQueueFull (default 100 ms).
	EnqueueTimeout time.Duration
	// Now stamps events without a timestamp (default time.Now).
	Now func() time.Time
	// After starts the group-commit window (default time.After); tests inject it.
	After func(time.Duration) <-chan time.Time
	// Log receives sink errors (default slog.Default()).
	Log *slog.Logger
}

// Stats are counters for metrics.
type Stats struct {
	Queued   int    // events accepted and not yet durable (queue depth)
	Capacity int    // QueueSize
	Written  uint64 // events durably written
	Failed   uint64 // events whose group the sink refused
	Rejected uint64 // ErrQueueFull returned
	Groups   uint64 // group commits
}

type pending struct {
	entry Entry
	done  chan error // nil for fire-and-forget
	flush chan error // non-nil for a Flush barrier (no entry)
}

// Logger is the front of the audit log: a bounded queue and one writer
// goroutine doing group commit into a Sink.
type Logger struct {
	sink Sink
	o    Options

	slots chan struct{} // one token per accepted, not yet durable event
	queue chan *pending

	mu       sync.RWMutex // guards closed against sends on queue
	closed   bool
	reserved sync.WaitGroup
	done     chan struct{}

	written, failed, rejected, groups atomic.Uint64
}

// New starts a Logger writing to sink. Close it to drain and close the sink.
func New(sink Sink, o Options) (*Logger, error) {
	if sink == nil {
		return nil, errors.New("audit: sink is required")
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.EnqueueTimeout <= 0 {
		o.EnqueueTimeout = DefaultEnqueueTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	l := &Logger{
		sink:  sink,
		o:     o,
		slots: make(chan struct{}, o.QueueSize),
		// Barriers (Flush) do not take slots; the extra room keeps a slot
		// holder's send from waiting on them for long.
		queue: make(chan *pending, o.QueueSize+64),
		done:  make(chan struct{}),
	}
	go l.run()
	return l, nil
}

// Reservation is room for one event taken in advance, so a request can be
// refused before it reaches the upstream when the audit log cannot take its
// event. Use it exactly once with Record or Enqueue, or Release it.
type Reservation struct {
	l    *Logger
	used atomic.Bool
}

// Reserve takes room for one event, waiting at most Options.EnqueueTimeout
// (or until ctx ends) while the queue is full. It returns ErrQueueFull or ErrClosed.
func (l *Logger) Reserve(ctx context.Context) (*Reservation, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	select {
	case l.slots <- struct{}{}:
	default:
		t := time.NewTimer(l.o.EnqueueTimeout)
		defer t.Stop()
		select {
		case l.slots <- struct{}{}:
		case <-t.C:
			l.rejected.Add(1)
			return nil, ErrQueueFull
		case <-ctx.Done():
			l.rejected.Add(1)
			return nil, fmt.Errorf("%w: %w", ErrQueueFull, ctx.Err())
		}
	}
	l.reserved.Add(1)
	return &Reservation{l: l}, nil
}

// Release gives the room back unused. Safe after Record/Enqueue (then a no-op).
func (r *Reservation) Release() {
	if r.used.Swap(true) {
		return
	}
	<-r.l.slots
	r.l.reserved.Done()
}

// Record enqueues ev into the reserved room and waits until it is durable.
func (r *Reservation) Record(ctx context.Context, ev Event) error { return r.submit(ctx, ev, true) }

// Enqueue enqueues ev into the reserved room and returns without waiting.
func (r *Reservation) Enqueue(ev Event) error { return r.submit(context.Background(), ev, false) }

func (r *Reservation) submit(ctx context.Context, ev Event, wait bool) error {
	if r.used.Swap(true) {
		return errors.New("audit: reservation already used")
	}
	l := r.l
	e, err := encode(ev, l.o.Now)
	if err != nil {
		<-l.slots
		l.reserved.Done()
		return err
	}
	p := &pending{entry: e}
	if wait {
		p.done = make(chan error, 1)
	}
	// Close waits for outstanding reservations before closing the queue, and
	// the slot guarantees room, so this send neither panics nor blocks long.
	l.queue <- p
	l.reserved.Done()
	if !wait {
		return nil
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		// The event stays queued and will be written; only the wait ends.
		return fmt.Errorf("audit ack: %w", ctx.Err())
	}
}

// Record enqueues ev and returns once it is durable in the sink (its group
// was written and fsync'd). If the queue stays full for EnqueueTimeout it
// returns ErrQueueFull without recording. Events without a Timestamp are
// stamped with Options.Now.
func (l *Logger) Record(ctx context.Context, ev Event) error {
	r, err := l.Reserve(ctx)
	if err != nil {
		return err
	}
	return r.Record(ctx, ev)
}

// Enqueue is fire-and-forget with backpressure: it returns once ev is
// queued, or ErrQueueFull after waiting EnqueueTimeout. A queued event is
// written unless the process is killed (Close drains the queue); sink
// errors are logged and counted in Stats.Failed.
func (l *Logger) Enqueue(ctx context.Context, ev Event) error {
	r, err := l.Reserve(ctx)
	if err != nil {
		return err
	}
	return r.Enqueue(ev)
}

// Flush commits everything queued before the call as soon as possible and
// waits until it is durable.
func (l *Logger) Flush(ctx context.Context) error {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	p := &pending{flush: make(chan error, 1)}
	select {
	case l.queue <- p:
	case <-ctx.Done():
		l.mu.RUnlock()
		return ctx.Err()
	}
	l.mu.RUnlock()
	select {
	case err := <-p.flush:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns the current counters.
func (l *Logger) Stats() Stats {
	return Stats{
		Queued: len(l.slots), Capacity: cap(l.slots),
		Written: l.written.Load(), Failed: l.failed.Load(), Rejected: l.rejected.Load(), Groups: l.groups.Load(),
	}
}

// Close refuses new events, waits for outstanding reservations, writes
// everything accepted, and closes the sink. Call it after the HTTP server
// has shut down (so in-flight requests have recorded their events). If ctx
// ends first, Close returns its error and the writer keeps draining.
func (l *Logger) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.done
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	reservedDone := make(chan struct{})
	go func() {
		l.reserved.Wait()
		l.mu.Lock()
		close(l.queue)
		l.mu.Unlock()
		close(reservedDone)
	}()
	select {
	case <-l.done:
	case <-ctx.Done():
		return fmt.Errorf("audit close: %w", ctx.Err())
	}
	<-reservedDone
	if err := l.sink.Close(); err != nil {
		return fmt.Errorf("close audit sink: %w", err)
	}
	return nil
}

// run is the writer: it collects a group and commits it with one Write.
func (l *Logger) run() {
	defer close(l.done)
	batch := make([]*pending, 0, l.o.MaxBatch)
	var barriers []*pending
	for {
		p, ok := <-l.queue
		if !ok {
			return
		}
		batch, barriers = batch[:0], barriers[:0]
		open := true
		if p.flush != nil {
			barriers = append(barriers, p)
		} else {
			batch = append(batch, p)
			if l.o.Window > 0 {
				timer := l.o.After(l.o.Window)
			collect:
				for len(batch) < l.o.MaxBatch {
					select {
					case p, ok := <-l.queue:
						if !ok {
							open = false
							break collect
						}
						if p.flush != nil {
							barriers = append(barriers, p)
							break collect
						}
						batch = append(batch, p)
					case <-timer:
						break collect
					}
				}
			}
		}
		// Take whatever else is already queued (up to MaxBatch).
	drain:
		for open && len(batch) < l.o.MaxBatch {
			select {
			case p, ok := <-l.queue:
				if !ok {
					open = false
					break drain
				}
				if p.flush != nil {
					barriers = append(barriers, p)
				} else {
					batch = append(batch, p)
				}
			default:
				break drain
			}
		}
		err := l.commit(batch)
		for _, b := range barriers {
			b.flush <- err
		}
		if !open {
			return
		}
	}
}

func (l *Logger) commit(batch []*pending) error {
	if len(batch) == 0 {
		return nil
	}
	entries := make([]Entry, len(batch))
	for i, p := range batch {
		entries[i] = p.entry
	}
	err := l.sink.Write(context.Background(), entries)
	l.groups.Add(1)
	if err != nil {
		l.failed.Add(uint64(len(batch)))
		l.o.Log.Error("audit group commit", slog.Int("events", len(batch)), slog.String("error", err.Error()))
		err = fmt.Errorf("audit write: %w", err)
	} else {
		l.written.Add(uint64(len(batch)))
	}
	for _, p := range batch {
		if p.done != nil {
			p.done <- err
		}
		<-l.slots
	}
	return err
}
