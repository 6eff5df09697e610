package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// StreamSink writes each event as one JSON line to a stream such as
// os.Stdout (for a log collector). It adds no chain or encryption: use it
// beside the file sink (see Tee), not instead of it, when tamper evidence
// matters.
type StreamSink struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

// NewStreamSink returns a sink writing JSON lines to w. Close does not close w.
func NewStreamSink(w io.Writer) *StreamSink { return &StreamSink{w: w} }

// Write writes the batch with one Write call.
func (s *StreamSink) Write(_ context.Context, batch []Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buf[:0]
	for _, e := range batch {
		b = append(b, e.JSON...)
		b = append(b, '\n')
	}
	s.buf = b
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("write audit stream: %w", err)
	}
	return nil
}

// Close does nothing; the stream belongs to the caller.
func (s *StreamSink) Close() error { return nil }

type tee []Sink

// Tee returns a sink that writes every batch to each sink in order; a batch
// is acknowledged only when all of them accepted it.
func Tee(sinks ...Sink) Sink { return tee(sinks) }

func (t tee) Write(ctx context.Context, batch []Entry) error {
	var errs []error
	for _, s := range t {
		if err := s.Write(ctx, batch); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (t tee) Close() error {
	var errs []error
	for _, s := range t {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
