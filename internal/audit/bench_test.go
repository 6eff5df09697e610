package audit

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

func benchLogger(b *testing.B, encrypt bool, window time.Duration) *Logger {
	b.Helper()
	fs, err := OpenFile(FileOptions{Dir: filepath.Join(b.TempDir(), "audit"), SealKeys: sealKeys, Encrypt: encrypt, EncryptionKeys: encKeys})
	if err != nil {
		b.Fatal(err)
	}
	l, err := New(fs, Options{Window: window})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close(context.Background()) })
	return l
}

// BenchmarkThroughput: many producers, fire-and-forget with backpressure,
// chain + AES-256-GCM + group commit with fsync; reports events/s.
func BenchmarkThroughput(b *testing.B) {
	for _, tc := range []struct {
		name    string
		encrypt bool
		window  time.Duration
	}{
		{"chain+encrypt+fsync/window=10ms", true, DefaultWindow},
		{"chain+encrypt+fsync/window=off", true, -1},
		{"chain+fsync/window=10ms", false, DefaultWindow},
	} {
		b.Run(tc.name, func(b *testing.B) {
			l := benchLogger(b, tc.encrypt, tc.window)
			ev := testEvent(1)
			ctx := context.Background()
			b.SetParallelism(16)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					// A full queue is backpressure: a gateway would answer 503; retry here.
					for err := l.Enqueue(ctx, ev); err != nil; err = l.Enqueue(ctx, ev) {
						if !errors.Is(err, ErrQueueFull) {
							b.Error(err)
							return
						}
					}
				}
			})
			if err := l.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
			st := l.Stats()
			b.ReportMetric(float64(st.Written)/float64(max(st.Groups, 1)), "events/group")
			b.ReportMetric(float64(st.Rejected), "queue-full")
		})
	}
}

// BenchmarkRecordAck: the latency Record adds when the caller waits for its
// event to be durable (what Middleware does for each state-changing request).
func BenchmarkRecordAck(b *testing.B) {
	for _, tc := range []struct {
		name     string
		window   time.Duration
		parallel bool
	}{
		{"window=10ms/serial", DefaultWindow, false},
		{"window=off/serial", -1, false},
		{"window=10ms/64-concurrent", DefaultWindow, true},
		{"window=off/64-concurrent", -1, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			l := benchLogger(b, true, tc.window)
			ev := testEvent(1)
			ctx := context.Background()
			b.ResetTimer()
			if !tc.parallel {
				for range b.N {
					if err := l.Record(ctx, ev); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.SetParallelism(32)
			var mu sync.Mutex
			var lat []time.Duration
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					t0 := time.Now()
					if err := l.Record(ctx, ev); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}

// BenchmarkFileSinkWrite: the writer's serial cost per event in groups of 1000.
func BenchmarkFileSinkWrite(b *testing.B) {
	fs, err := OpenFile(FileOptions{Dir: filepath.Join(b.TempDir(), "audit"), SealKeys: sealKeys, Encrypt: true, EncryptionKeys: encKeys})
	if err != nil {
		b.Fatal(err)
	}
	defer fs.Close()
	batch := make([]Entry, 1000)
	for i := range batch {
		batch[i] = entries(b, testEvent(i))[0]
	}
	b.ResetTimer()
	for i := 0; i < b.N; i += len(batch) {
		if err := fs.Write(context.Background(), batch[:min(len(batch), b.N-i)]); err != nil {
			b.Fatal(err)
		}
	}
}
