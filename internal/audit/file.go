package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults of FileOptions.
const (
	DefaultMaxSegmentBytes = 64 << 20
	DefaultMaxSegmentAge   = 24 * time.Hour
)

// ErrSinkBroken is returned by a file sink after a write it could not undo.
var ErrSinkBroken = errors.New("audit sink broken")

// FileOptions configure a file sink.
type FileOptions struct {
	// Dir holds the segment files. It is created with mode 0700 and must not
	// be accessible by group or others; files are created with mode 0600.
	Dir string
	// SealKeys sign each segment (HMAC-SHA256) when it is rotated or closed,
	// and the retention anchor. Required.
	SealKeys Keyring
	// Encrypt turns on AES-256-GCM for every record under EncryptionKeys.Current.
	Encrypt        bool
	EncryptionKeys Keyring
	// MaxSegmentBytes and MaxSegmentAge rotate the open segment (checked at
	// each group commit). Zero means DefaultMaxSegmentBytes / DefaultMaxSegmentAge.
	MaxSegmentBytes int64
	MaxSegmentAge   time.Duration
	// RetentionDays prunes whole sealed segments sealed longer ago than this,
	// at open and after every rotation. Zero keeps everything.
	RetentionDays int
	Now           func() time.Time // default time.Now
	Rand          io.Reader        // nonces; default crypto/rand.Reader
	Log           *slog.Logger     // default slog.Default()
}

// FileSink writes events to hash-chained, sealed segment files. It is the
// default Sink. One FileSink owns a directory (an exclusive lock is held).
type FileSink struct {
	o    FileOptions
	aead cipher.AEAD
	fp   string // encryption key fingerprint
	lock *os.File

	mu      sync.Mutex
	f       *os.File
	seg     uint64
	start   uint64
	startP  hash32
	created time.Time
	size    int64
	next    uint64
	last    hash32
	count   uint64
	buf     []byte
	broken  error
	closed  bool
}

// Segment files are named audit-<16-digit index>.open while written and
// renamed to audit-<index>.log once sealed, so a sealed segment that lost its
// seal (truncation) is told apart from a segment a crash left open.
const segPrefix, sealedSuffix, openSuffix = "audit-", ".log", ".open"

type segFile struct {
	idx  uint64
	open bool
}

func (f segFile) name() string {
	if f.open {
		return fmt.Sprintf("%s%016d%s", segPrefix, f.idx, openSuffix)
	}
	return fmt.Sprintf("%s%016d%s", segPrefix, f.idx, sealedSuffix)
}

func parseSegName(n string) (segFile, bool) {
	if !strings.HasPrefix(n, segPrefix) {
		return segFile{}, false
	}
	rest := strings.TrimPrefix(n, segPrefix)
	var f segFile
	switch {
	case strings.HasSuffix(rest, sealedSuffix):
		rest = strings.TrimSuffix(rest, sealedSuffix)
	case strings.HasSuffix(rest, openSuffix):
		rest, f.open = strings.TrimSuffix(rest, openSuffix), true
	default:
		return segFile{}, false
	}
	i, err := strconv.ParseUint(rest, 10, 64)
	f.idx = i
	return f, err == nil && i > 0
}

// listSegments returns the segment files in dir, ascending by index.
func listSegments(dir string) ([]segFile, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read audit dir: %w", err)
	}
	var out []segFile
	for _, e := range ents {
		if f, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].idx != out[b].idx {
			return out[a].idx < out[b].idx
		}
		return !out[a].open
	})
	return out, nil
}

// OpenFile opens (or creates) the log in o.Dir. If the last segment was left
// open by a crash, its torn tail (a partial last line, never acknowledged) is
// cut, the segment is sealed as recovered, and a new segment starts.
func OpenFile(o FileOptions) (*FileSink, error) {
	if o.Dir == "" {
		return nil, errors.New("audit file sink: dir is required")
	}
	if o.SealKeys.Empty() {
		return nil, errors.New("audit file sink: a seal key is required")
	}
	if err := o.SealKeys.Validate(); err != nil {
		return nil, fmt.Errorf("audit seal keys: %w", err)
	}
	if o.MaxSegmentBytes <= 0 {
		o.MaxSegmentBytes = DefaultMaxSegmentBytes
	}
	if o.MaxSegmentAge <= 0 {
		o.MaxSegmentAge = DefaultMaxSegmentAge
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	s := &FileSink{o: o}
	if o.Encrypt {
		if o.EncryptionKeys.Empty() {
			return nil, errors.New("audit file sink: encrypt is on but no encryption key is given")
		}
		if err := o.EncryptionKeys.Validate(); err != nil {
			return nil, fmt.Errorf("audit encryption keys: %w", err)
		}
		var err error
		if s.aead, err = newAEAD(o.EncryptionKeys.Current.Secret); err != nil {
			return nil, err
		}
		s.fp = o.EncryptionKeys.Current.fingerprint()
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create audit dir: %w", err)
	}
	st, err := os.Stat(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("stat audit dir: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("audit dir %s has mode %o: must not be accessible by group or others (chmod 700)", o.Dir, st.Mode().Perm())
	}
	if s.lock, err = lockFile(filepath.Join(o.Dir, ".lock")); err != nil {
		return nil, err
	}
	if err := s.recover(); err != nil {
		s.lock.Close()
		return nil, err
	}
	if o.RetentionDays > 0 {
		s.prune()
	}
	return s, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("audit encryption key: %w", err)
	}
	return cipher.NewGCM(b)
}

func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit dir %s is in use by another writer: %w", filepath.Dir(path), err)
	}
	return f, nil
}

// recover finds where the chain continues and opens a fresh segment.
func (s *FileSink) recover() error {
	segs, err := listSegments(s.o.Dir)
	if err != nil {
		return err
	}
	s.next = 1
	a, err := readAnchor(s.o.Dir)
	if err != nil {
		return err
	}
	nextSeg := uint64(1)
	if a != nil {
		if s.last, err = decodeHash(a.Hash); err != nil {
			return fmt.Errorf("audit anchor: %w", err)
		}
		s.next = a.Next
		nextSeg = a.Seg + 1
	}
	if len(segs) > 0 {
		lastSeg := segs[len(segs)-1]
		if err := s.continueFrom(lastSeg); err != nil {
			return err
		}
		nextSeg = lastSeg.idx + 1
	}
	return s.openSegment(nextSeg)
}

// continueFrom reads the last segment: if sealed, the chain continues after
// its seal; if open, it is repaired and sealed as recovered.
func (s *FileSink) continueFrom(sf segFile) error {
	path := filepath.Join(s.o.Dir, sf.name())
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read audit segment: %w", err)
	}
	good := bytes.LastIndexByte(data, '\n') + 1 // end of the last complete line
	var hdr *header
	var sl *seal
	var lastRec *record
	var count uint64
	sc := bufio.NewScanner(bytes.NewReader(data[:good]))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		l, err := parseLine(sc.Bytes())
		if err != nil {
			return fmt.Errorf("audit segment %s: %w (run rampart audit verify)", path, err)
		}
		switch {
		case l.Hdr != nil:
			hdr = l.Hdr
		case l.Seal != nil:
			sl = l.Seal
		default:
			r, err := l.record()
			if err != nil {
				return fmt.Errorf("audit segment %s: %w", path, err)
			}
			lastRec = &r
			count++
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read audit segment %s: %w", path, err)
	}
	if sl != nil {
		h, err := decodeHash(sl.Hash)
		if err != nil {
			return fmt.Errorf("audit segment %s seal: %w", path, err)
		}
		s.next, s.last = sl.Next, h
		if sf.open { // crashed between sealing and renaming
			return s.renameSealed(sf.idx)
		}
		return nil
	}
	if hdr == nil {
		// Crashed before the header reached the disk: nothing was acknowledged here.
		s.o.Log.Warn("audit segment without header removed", slog.String("segment", path))
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove empty audit segment: %w", err)
		}
		return syncDir(s.o.Dir)
	}
	if good < len(data) {
		s.o.Log.Warn("audit torn tail cut", slog.String("segment", path), slog.Int("bytes", len(data)-good))
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("open audit segment: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(int64(good)); err != nil {
		return fmt.Errorf("cut audit torn tail: %w", err)
	}
	s.seg, s.start, s.created = hdr.Seg, hdr.Start, hdr.Created
	if s.startP, err = decodeHash(hdr.Prev); err != nil {
		return fmt.Errorf("audit segment %s header: %w", path, err)
	}
	s.next, s.last, s.count = hdr.Start, s.startP, count
	if lastRec != nil {
		s.next, s.last = lastRec.seq+1, lastRec.hash
	}
	sealedAt := s.o.Now()
	if st, err := f.Stat(); err == nil {
		sealedAt = st.ModTime()
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		return fmt.Errorf("seek audit segment: %w", err)
	}
	s.f = f
	err = s.writeSeal(sealedAt, true)
	s.f = nil
	if err != nil {
		return err
	}
	if sf.open {
		if err := s.renameSealed(sf.idx); err != nil {
			return err
		}
	}
	s.o.Log.Warn("audit segment recovered after unclean shutdown", slog.String("segment", path), slog.Uint64("next_seq", s.next))
	return nil
}

// renameSealed gives a sealed segment its final name.
func (s *FileSink) renameSealed(idx uint64) error {
	from := filepath.Join(s.o.Dir, segFile{idx: idx, open: true}.name())
	if err := os.Rename(from, filepath.Join(s.o.Dir, segFile{idx: idx}.name())); err != nil {
		return fmt.Errorf("rename sealed audit segment: %w", err)
	}
	return syncDir(s.o.Dir)
}

func (s *FileSink) openSegment(idx uint64) error {
	path := filepath.Join(s.o.Dir, segFile{idx: idx, open: true}.name())
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("create audit segment: %w", err)
	}
	now := s.o.Now().UTC()
	h := marshalLine(line{Hdr: &header{V: formatVersion, Seg: idx, Start: s.next, Prev: hexHash(s.last), Created: now}})
	if _, err := f.Write(h); err != nil {
		f.Close()
		return fmt.Errorf("write audit segment header: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync audit segment: %w", err)
	}
	if err := syncDir(s.o.Dir); err != nil {
		f.Close()
		return err
	}
	s.f, s.seg, s.start, s.startP, s.created, s.size, s.count = f, idx, s.next, s.last, now, int64(len(h)), 0
	return nil
}

// writeSeal appends and syncs the seal of the segment in s.f.
func (s *FileSink) writeSeal(sealedAt time.Time, recovered bool) error {
	k := s.o.SealKeys.Current
	sl := &seal{Seg: s.seg, Start: s.start, StartPrev: hexHash(s.startP), Next: s.next, Hash: hexHash(s.last),
		Count: s.count, Created: s.created.UTC(), Sealed: sealedAt.UTC(), Recovered: recovered, Key: k.fingerprint()}
	sl.MAC = sl.mac(k.Secret)
	if _, err := s.f.Write(marshalLine(line{Seal: sl})); err != nil {
		return fmt.Errorf("write audit seal: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sync audit seal: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open audit dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync audit dir: %w", err)
	}
	return nil
}

// Write appends batch as one group: one write and one fsync. When it returns
// nil every entry is on disk. On error nothing of the batch remains.
func (s *FileSink) Write(_ context.Context, batch []Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.broken != nil {
		return s.broken
	}
	if len(batch) == 0 {
		return nil
	}
	next, last := s.next, s.last
	need := 0
	for _, e := range batch {
		need += len(e.JSON)*4/3 + 256 // base64 of ciphertext + fixed fields
	}
	buf := slices.Grow(s.buf[:0], need)
	for _, e := range batch {
		var h hash32
		if s.aead == nil {
			h = recordHash(next, last, e.JSON, "", nil, nil)
			buf = appendRecord(buf, next, last, h, e.JSON, "", nil, nil)
		} else {
			var nonce [12]byte
			if _, err := io.ReadFull(s.o.Rand, nonce[:]); err != nil {
				return fmt.Errorf("audit nonce: %w", err)
			}
			ct := s.aead.Seal(nil, nonce[:], e.JSON, gcmAAD(next, last))
			h = recordHash(next, last, nil, s.fp, nonce[:], ct)
			buf = appendRecord(buf, next, last, h, nil, s.fp, nonce[:], ct)
		}
		next, last = next+1, h
	}
	s.buf = buf
	if _, err := s.f.Write(buf); err != nil {
		return s.undo(fmt.Errorf("write audit segment: %w", err))
	}
	if err := s.f.Sync(); err != nil {
		return s.undo(fmt.Errorf("sync audit segment: %w", err))
	}
	s.size += int64(len(buf))
	s.count += uint64(len(batch))
	s.next, s.last = next, last
	if cap(s.buf) > 16<<20 {
		s.buf = nil // do not pin an outsized buffer after a burst
	}
	if s.size >= s.o.MaxSegmentBytes || s.o.Now().Sub(s.created) >= s.o.MaxSegmentAge {
		if err := s.rotate(); err != nil {
			s.broken = fmt.Errorf("%w: %w", ErrSinkBroken, err)
			s.o.Log.Error("audit segment rotation", slog.String("error", err.Error()))
		}
	}
	return nil
}

// undo cuts a partially written group so the file ends on the last acknowledged record.
func (s *FileSink) undo(err error) error {
	if terr := s.f.Truncate(s.size); terr != nil {
		s.broken = fmt.Errorf("%w: %w (undo: %w)", ErrSinkBroken, err, terr)
		return s.broken
	}
	return err
}

func (s *FileSink) rotate() error {
	if err := s.writeSeal(s.o.Now(), false); err != nil {
		return err
	}
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("close audit segment: %w", err)
	}
	s.f = nil
	if err := s.renameSealed(s.seg); err != nil {
		return err
	}
	if err := s.openSegment(s.seg + 1); err != nil {
		return err
	}
	if s.o.RetentionDays > 0 {
		s.prune()
	}
	return nil
}

func (s *FileSink) prune() {
	before := s.o.Now().Add(-time.Duration(s.o.RetentionDays) * 24 * time.Hour)
	res, err := Prune(s.o.Dir, s.o.SealKeys, before, s.o.Now)
	if err != nil {
		s.o.Log.Error("audit retention prune", slog.String("error", err.Error()))
		return
	}
	if res.Segments > 0 {
		s.o.Log.Info("audit retention pruned", slog.Int("segments", res.Segments), slog.Uint64("through_seq", res.Next-1))
	}
}

// Close seals the open segment and releases the directory.
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.f != nil {
		sealed := false
		if s.broken == nil {
			err := s.writeSeal(s.o.Now(), false)
			errs = append(errs, err)
			sealed = err == nil
		}
		errs = append(errs, s.f.Close())
		if sealed {
			errs = append(errs, s.renameSealed(s.seg))
		}
	}
	errs = append(errs, s.lock.Close())
	return errors.Join(errs...)
}

// isNotExist reports a missing file.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// SetKeys replaces the seal and encryption keyrings after a secret rotation,
// without a restart: the next seal (segment rotation or close) uses
// seal.Current and the next record enc.Current. The previous keys must stay
// in the keyrings given to Verify and Export for what was written under
// them. On error nothing changes.
func (s *FileSink) SetKeys(seal, enc Keyring) error {
	if seal.Empty() {
		return errors.New("audit file sink: a seal key is required")
	}
	if err := seal.Validate(); err != nil {
		return fmt.Errorf("audit seal keys: %w", err)
	}
	var aead cipher.AEAD
	if s.o.Encrypt {
		if enc.Empty() {
			return errors.New("audit file sink: encrypt is on but no encryption key is given")
		}
		if err := enc.Validate(); err != nil {
			return fmt.Errorf("audit encryption keys: %w", err)
		}
		var err error
		if aead, err = newAEAD(enc.Current.Secret); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.o.SealKeys = seal
	if s.o.Encrypt {
		s.o.EncryptionKeys, s.aead, s.fp = enc, aead, enc.Current.fingerprint()
	}
	return nil
}
