package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

const anchorName = "anchor.json"

// PruneResult says what Prune removed.
type PruneResult struct {
	Segments int    // segment files removed
	Next     uint64 // the chain now starts at this sequence number
}

func readAnchor(dir string) (*anchor, error) {
	b, err := os.ReadFile(filepath.Join(dir, anchorName))
	if isNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read audit anchor: %w", err)
	}
	var a anchor
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("parse audit anchor: %w", err)
	}
	return &a, nil
}

// Prune removes whole sealed segments sealed before the given time, oldest
// first, never the newest segment. Before removing anything it writes a
// signed anchor (HMAC under keys.Current) naming the last removed sequence
// number and hash, so Verify checks the remaining chain from there. A
// segment whose seal does not verify stops pruning with an error: evidence
// of tampering is never deleted.
func Prune(dir string, keys Keyring, before time.Time, now func() time.Time) (PruneResult, error) {
	if keys.Empty() {
		return PruneResult{}, errors.New("audit prune: a seal key is required to sign the anchor")
	}
	if now == nil {
		now = time.Now
	}
	lock, err := lockFile(filepath.Join(dir, ".prune.lock"))
	if err != nil {
		return PruneResult{}, err
	}
	defer lock.Close()
	segs, err := listSegments(dir)
	if err != nil {
		return PruneResult{}, err
	}
	var remove []string
	var last *seal
	for i, sf := range segs {
		if i == len(segs)-1 || sf.open {
			break
		}
		idx := sf.idx
		path := filepath.Join(dir, sf.name())
		sl, err := readSeal(path)
		if err != nil {
			return PruneResult{}, err
		}
		if sl == nil || !sl.Sealed.Before(before) {
			break
		}
		k, err := keys.lookup(sl.Key)
		if err != nil {
			return PruneResult{}, fmt.Errorf("audit prune %s: %w", path, err)
		}
		if sl.mac(k.Secret) != sl.MAC || sl.Seg != idx {
			return PruneResult{}, fmt.Errorf("audit prune %s: seal does not verify; run rampart audit verify", path)
		}
		if last != nil && sl.Seg != last.Seg+1 {
			return PruneResult{}, fmt.Errorf("audit prune %s: segment %d missing; run rampart audit verify", path, last.Seg+1)
		}
		remove = append(remove, path)
		last = sl
	}
	if last == nil {
		return PruneResult{}, nil
	}
	k := keys.Current
	a := &anchor{Seg: last.Seg, Next: last.Next, Hash: last.Hash, PrunedAt: now().UTC(), Key: k.fingerprint()}
	a.MAC = a.mac(k.Secret)
	b, _ := json.Marshal(a)
	tmp := filepath.Join(dir, anchorName+".tmp")
	if err := writeFileSync(tmp, append(b, '\n')); err != nil {
		return PruneResult{}, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, anchorName)); err != nil {
		return PruneResult{}, fmt.Errorf("install audit anchor: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return PruneResult{}, err
	}
	for _, p := range remove {
		if err := os.Remove(p); err != nil {
			return PruneResult{}, fmt.Errorf("remove audit segment: %w", err)
		}
	}
	if err := syncDir(dir); err != nil {
		return PruneResult{}, err
	}
	return PruneResult{Segments: len(remove), Next: last.Next}, nil
}

func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", filepath.Base(path), err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", filepath.Base(path), err)
	}
	return f.Close()
}

// readSeal returns the seal of a segment file, or nil if it has none.
func readSeal(path string) (*seal, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open audit segment: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat audit segment: %w", err)
	}
	const tail = 4096
	off := max(st.Size()-tail, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("read audit segment: %w", err)
	}
	if len(buf) == 0 || buf[len(buf)-1] != '\n' {
		return nil, nil
	}
	buf = buf[:len(buf)-1]
	start := 0
	for i := len(buf) - 1; i >= 0; i-- {
		if buf[i] == '\n' {
			start = i + 1
			break
		}
	}
	l, err := parseLine(buf[start:])
	if err != nil || l.Seal == nil {
		return nil, nil
	}
	return l.Seal, nil
}
