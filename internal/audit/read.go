package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// decoder turns record lines back into event JSON.
type decoder struct {
	keys Keyring
}

// event returns the record's event JSON, decrypting it when needed.
func (d decoder) event(l line) ([]byte, error) {
	r, err := l.record()
	if err != nil {
		return nil, err
	}
	if r.ct == nil {
		return r.plain, nil
	}
	k, err := d.keys.lookup(r.fp)
	if err != nil {
		return nil, fmt.Errorf("record %d: %w", r.seq, err)
	}
	aead, err := newAEAD(k.Secret)
	if err != nil {
		return nil, err
	}
	if len(r.nonce) != aead.NonceSize() {
		return nil, fmt.Errorf("record %d: bad nonce", r.seq)
	}
	pt, err := aead.Open(nil, r.nonce, r.ct, gcmAAD(r.seq, r.prev))
	if err != nil {
		return nil, fmt.Errorf("decrypt record %d: %w", r.seq, err)
	}
	return pt, nil
}

// exportLine is the event JSON with "seq" spliced in front.
func exportLine(seq uint64, ev []byte) []byte {
	out := fmt.Appendf(nil, `{"seq":%d`, seq)
	if len(ev) > 2 {
		out = append(out, ',')
	}
	out = append(out, ev[1:]...)
	return append(out, '\n')
}

// ExportOptions select what Export writes.
type ExportOptions struct {
	// Since skips events with a timestamp before it (zero: everything).
	Since time.Time
	// Keys decrypt encrypted records (needed only when encryption is on).
	Keys Keyring
}

// Export writes every event in dir, oldest first, as one JSON object per
// line (the event's fields plus "seq"), decrypting encrypted records. It does
// not verify the chain; run Verify for that.
func Export(ctx context.Context, dir string, w io.Writer, o ExportOptions) error {
	segs, err := listSegments(dir)
	if err != nil {
		return err
	}
	d := decoder{keys: o.Keys}
	bw := bufio.NewWriter(w)
	for _, sf := range segs {
		path := filepath.Join(dir, sf.name())
		if !o.Since.IsZero() && !sf.open {
			if sl, err := readSeal(path); err == nil && sl != nil && sl.Sealed.Before(o.Since) {
				continue
			}
		}
		if err := exportFile(ctx, path, d, o.Since, bw); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func exportFile(ctx context.Context, path string, d decoder, since time.Time, w io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open audit segment: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return nil // a partial last line is a torn, unacknowledged write
		}
		if err != nil {
			return fmt.Errorf("read audit segment: %w", err)
		}
		if err := writeEvent(b, d, since, w); err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(path), err)
		}
	}
}

func writeEvent(b []byte, d decoder, since time.Time, w io.Writer) error {
	l, err := parseLine(bytes.TrimSuffix(b, []byte("\n")))
	if err != nil {
		return err
	}
	if l.Seq == 0 {
		return nil
	}
	ev, err := d.event(l)
	if err != nil {
		return err
	}
	if !since.IsZero() {
		var t struct {
			Timestamp time.Time `json:"timestamp"`
		}
		if err := json.Unmarshal(ev, &t); err != nil {
			return fmt.Errorf("record %d: %w", l.Seq, err)
		}
		if t.Timestamp.Before(since) {
			return nil
		}
	}
	_, err = w.Write(exportLine(l.Seq, ev))
	return err
}

// TailOptions configure Tail.
type TailOptions struct {
	Keys Keyring
	// Last is how many existing events of the newest segment to print first (default 10; negative: none).
	Last int
	// Poll is how often to look for new data (default 250 ms).
	Poll time.Duration
}

// Tail prints the last events of the log and then follows it, across
// segment rotations, until ctx ends (it then returns nil).
func Tail(ctx context.Context, dir string, w io.Writer, o TailOptions) error {
	if o.Poll <= 0 {
		o.Poll = 250 * time.Millisecond
	}
	if o.Last == 0 {
		o.Last = 10
	}
	d := decoder{keys: o.Keys}
	var cur segFile
	var off int64
	var pending []byte
	for {
		segs, err := listSegments(dir)
		if err != nil {
			return err
		}
		if cur.idx == 0 && len(segs) > 0 {
			cur = segs[len(segs)-1]
			if err := tailLast(dir, cur, d, o.Last, w); err != nil {
				return err
			}
			if off, err = fileSize(dir, cur); err != nil {
				return err
			}
		}
		if cur.idx != 0 {
			// A segment renamed from .open to .log keeps its content.
			for _, s := range segs {
				if s.idx == cur.idx {
					cur = s
				}
			}
			n, err := readFrom(dir, cur, off, &pending, d, w)
			if err != nil {
				return err
			}
			off += n
			if !cur.open {
				for _, s := range segs {
					if s.idx > cur.idx {
						cur, off, pending = s, 0, nil
						break
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.Poll):
		}
	}
}

func fileSize(dir string, sf segFile) (int64, error) {
	st, err := os.Stat(filepath.Join(dir, sf.name()))
	if err != nil {
		return 0, fmt.Errorf("stat audit segment: %w", err)
	}
	return st.Size(), nil
}

func tailLast(dir string, sf segFile, d decoder, last int, w io.Writer) error {
	if last < 0 {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(dir, sf.name()))
	if err != nil {
		return fmt.Errorf("read audit segment: %w", err)
	}
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	var recs [][]byte
	for _, b := range bytes.SplitAfter(data, []byte("\n")) {
		if bytes.HasPrefix(b, []byte(`{"seq":`)) {
			recs = append(recs, b)
		}
	}
	if len(recs) > last {
		recs = recs[len(recs)-last:]
	}
	for _, b := range recs {
		if err := writeEvent(b, d, time.Time{}, w); err != nil {
			return err
		}
	}
	return nil
}

// readFrom prints complete lines from off and returns the bytes consumed.
func readFrom(dir string, sf segFile, off int64, pending *[]byte, d decoder, w io.Writer) (int64, error) {
	f, err := os.Open(filepath.Join(dir, sf.name()))
	if err != nil {
		if isNotExist(err) {
			return 0, nil // renamed between listing and opening; next poll finds it
		}
		return 0, fmt.Errorf("open audit segment: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, off, 1<<62))
	if err != nil {
		return 0, fmt.Errorf("read audit segment: %w", err)
	}
	buf := append(*pending, b...)
	end := bytes.LastIndexByte(buf, '\n') + 1
	for _, ln := range bytes.SplitAfter(buf[:end], []byte("\n")) {
		if len(ln) == 0 {
			continue
		}
		if err := writeEvent(ln, d, time.Time{}, w); err != nil {
			return 0, err
		}
	}
	*pending = append([]byte(nil), buf[end:]...)
	return int64(len(b)), nil
}
