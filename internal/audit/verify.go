package audit

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// Kind classifies a verification finding.
type Kind string

// Problems: evidence that acknowledged records were changed or removed.
const (
	KindEdited    Kind = "edited"    // a record's content no longer matches its hash or its successor's prev
	KindDeleted   Kind = "deleted"   // records missing from inside a segment
	KindReordered Kind = "reordered" // records or segments out of order
	KindMissing   Kind = "missing"   // whole segments, or records between segments, missing
	KindTruncated Kind = "truncated" // a sealed segment lost its end, or a non-final segment is unsealed
	KindBadSeal   Kind = "bad_seal"  // a seal whose HMAC or contents do not match the segment
	KindBadAnchor Kind = "bad_anchor"
	KindMalformed Kind = "malformed" // a line that is not a record, header or seal
)

// Notes: expected states that are not tampering.
const (
	// KindTornTail: the open segment ends in a partial line. A crash during a
	// group write leaves one; that group was never fsync'd, so none of it was
	// acknowledged. The writer cuts it when it next starts.
	KindTornTail Kind = "torn_tail"
	// KindOpen: the newest segment is not sealed yet (writer running, or crashed).
	KindOpen Kind = "open_segment"
	// KindUnchecked: a seal or anchor could not be checked (no seal key given).
	KindUnchecked Kind = "unchecked"
	// KindPendingPrune: a segment already covered by the anchor (pruning was interrupted).
	KindPendingPrune Kind = "pending_prune"
)

// Finding is one problem or note.
type Finding struct {
	Kind    Kind   `json:"kind"`
	Segment string `json:"segment,omitempty"`
	Line    int    `json:"line,omitempty"` // 1-based line in the segment file
	Seq     uint64 `json:"seq,omitempty"`  // first record concerned
	Detail  string `json:"detail"`
}

func (f Finding) String() string {
	s := string(f.Kind)
	if f.Seq != 0 {
		s += fmt.Sprintf(" record seq %d", f.Seq)
	}
	if f.Segment != "" {
		s += " in " + f.Segment
		if f.Line != 0 {
			s += fmt.Sprintf(" line %d", f.Line)
		}
	}
	return s + ": " + f.Detail
}

// Report is the result of Verify.
type Report struct {
	Segments int    `json:"segments"`
	Records  uint64 `json:"records"`
	First    uint64 `json:"first_seq"` // first sequence number present (after any pruning)
	Next     uint64 `json:"next_seq"`  // the sequence number the next record gets
	// Problems holds the first tampering found (the walk stops there).
	Problems []Finding `json:"problems"`
	Notes    []Finding `json:"notes"`
}

// OK reports whether no problem was found (notes are allowed).
func (r Report) OK() bool { return len(r.Problems) == 0 }

// Verify walks every segment in dir in order, checks the hash chain (it does
// not need the encryption key), each seal's HMAC under sealKeys and the
// pruning anchor, and reports the first edited, deleted, reordered or missing
// record and any truncation. The error is for I/O only.
func Verify(dir string, sealKeys Keyring) (Report, error) {
	v := &verifier{keys: sealKeys, next: 1, seg: 1}
	if _, err := os.Stat(dir); err != nil {
		return Report{}, fmt.Errorf("audit dir: %w", err)
	}
	err := v.run(dir)
	v.rep.Next = v.next
	return v.rep, err
}

type verifier struct {
	keys   Keyring
	rep    Report
	next   uint64
	prev   hash32
	seg    uint64
	anchor *anchor
}

func (v *verifier) problem(f Finding) { v.rep.Problems = append(v.rep.Problems, f) }
func (v *verifier) note(f Finding)    { v.rep.Notes = append(v.rep.Notes, f) }

func (v *verifier) run(dir string) error {
	a, err := readAnchor(dir)
	if err != nil {
		v.problem(Finding{Kind: KindBadAnchor, Segment: anchorName, Detail: err.Error()})
		return nil
	}
	if a != nil {
		if !v.checkAnchor(a) {
			return nil
		}
		v.anchor = a
	}
	segs, err := listSegments(dir)
	if err != nil {
		return err
	}
	v.rep.First = v.next
	for i, sf := range segs {
		if i > 0 && segs[i-1].idx == sf.idx {
			v.problem(Finding{Kind: KindMalformed, Segment: sf.name(), Detail: "segment exists both open and sealed"})
			return nil
		}
		if v.anchor != nil && sf.idx <= v.anchor.Seg {
			v.note(Finding{Kind: KindPendingPrune, Segment: sf.name(), Detail: "covered by the prune anchor"})
			continue
		}
		if sf.idx != v.seg {
			v.problem(Finding{Kind: KindMissing, Segment: sf.name(), Seq: v.next,
				Detail: fmt.Sprintf("segment %d to %d missing (records from seq %d)", v.seg, sf.idx-1, v.next)})
			return nil
		}
		data, err := os.ReadFile(filepath.Join(dir, sf.name()))
		if err != nil {
			return fmt.Errorf("read audit segment: %w", err)
		}
		v.rep.Segments++
		if !v.segment(sf, data, i == len(segs)-1) {
			return nil
		}
		v.seg++
	}
	return nil
}

func (v *verifier) checkAnchor(a *anchor) bool {
	h, err := decodeHash(a.Hash)
	if err != nil {
		v.problem(Finding{Kind: KindBadAnchor, Segment: anchorName, Detail: "bad hash"})
		return false
	}
	if v.keys.Empty() {
		v.note(Finding{Kind: KindUnchecked, Segment: anchorName, Detail: "no seal key given; anchor signature not checked"})
	} else if k, err := v.keys.lookup(a.Key); err != nil {
		v.problem(Finding{Kind: KindBadAnchor, Segment: anchorName, Detail: err.Error()})
		return false
	} else if a.mac(k.Secret) != a.MAC {
		v.problem(Finding{Kind: KindBadAnchor, Segment: anchorName, Detail: "signature does not match"})
		return false
	}
	v.next, v.prev, v.seg = a.Next, h, a.Seg+1
	return true
}

// segment checks one file; false stops the walk.
func (v *verifier) segment(sf segFile, data []byte, last bool) bool {
	name := sf.name()
	complete := data[:bytes.LastIndexByte(data, '\n')+1]
	torn := len(data) - len(complete)
	var lines [][]byte
	for len(complete) > 0 {
		i := bytes.IndexByte(complete, '\n')
		lines = append(lines, complete[:i])
		complete = complete[i+1:]
	}
	parsed := make([]line, len(lines))
	for i, b := range lines {
		l, err := parseLine(b)
		if err != nil {
			v.problem(Finding{Kind: KindMalformed, Segment: name, Line: i + 1, Seq: v.next, Detail: err.Error()})
			return false
		}
		parsed[i] = l
	}
	if len(parsed) == 0 || parsed[0].Hdr == nil {
		if len(parsed) == 0 && sf.open && last {
			v.note(Finding{Kind: KindTornTail, Segment: name, Detail: "segment created but its header never reached the disk"})
			return false
		}
		v.problem(Finding{Kind: KindTruncated, Segment: name, Line: 1, Seq: v.next, Detail: "segment header missing"})
		return false
	}
	hdr := parsed[0].Hdr
	if hdr.Seg != sf.idx {
		v.problem(Finding{Kind: KindReordered, Segment: name, Line: 1, Detail: fmt.Sprintf("header says segment %d", hdr.Seg)})
		return false
	}
	if hdr.Start != v.next {
		k, d := KindMissing, fmt.Sprintf("segment starts at seq %d; records %d to %d missing", hdr.Start, v.next, hdr.Start-1)
		if hdr.Start < v.next {
			k, d = KindReordered, fmt.Sprintf("segment starts at seq %d, expected %d", hdr.Start, v.next)
		}
		v.problem(Finding{Kind: k, Segment: name, Line: 1, Seq: v.next, Detail: d})
		return false
	}
	if hexHash(v.prev) != hdr.Prev {
		v.problem(Finding{Kind: KindEdited, Segment: name, Line: 1, Seq: v.next - 1, Detail: "segment header does not continue the chain from the previous segment"})
		return false
	}
	body := parsed[1:]
	var sl *seal
	if n := len(body); n > 0 && body[n-1].Seal != nil {
		sl, body = body[n-1].Seal, body[:n-1]
	}
	pos := make(map[uint64]int, len(body))
	for j, l := range body {
		if l.Hdr != nil || l.Seal != nil {
			v.problem(Finding{Kind: KindMalformed, Segment: name, Line: j + 2, Seq: v.next, Detail: "header or seal in the middle of a segment"})
			return false
		}
		if _, dup := pos[l.Seq]; !dup {
			pos[l.Seq] = j
		}
	}
	for j, l := range body {
		ln := j + 2
		if l.Seq != v.next {
			if later, ok := pos[v.next]; ok && later > j {
				v.problem(Finding{Kind: KindReordered, Segment: name, Line: ln, Seq: v.next, Detail: fmt.Sprintf("seq %d found where %d belongs", l.Seq, v.next)})
			} else if l.Seq > v.next {
				v.problem(Finding{Kind: KindDeleted, Segment: name, Line: ln, Seq: v.next, Detail: fmt.Sprintf("records %d to %d missing", v.next, l.Seq-1)})
			} else {
				v.problem(Finding{Kind: KindReordered, Segment: name, Line: ln, Seq: l.Seq, Detail: fmt.Sprintf("seq %d repeated or out of order after %d", l.Seq, v.next-1)})
			}
			return false
		}
		r, err := l.record()
		if err != nil {
			v.problem(Finding{Kind: KindMalformed, Segment: name, Line: ln, Seq: l.Seq, Detail: err.Error()})
			return false
		}
		if r.computeHash() != r.hash {
			v.problem(Finding{Kind: KindEdited, Segment: name, Line: ln, Seq: r.seq, Detail: "record content does not match its hash"})
			return false
		}
		if r.prev != v.prev {
			v.problem(Finding{Kind: KindEdited, Segment: name, Line: ln - 1, Seq: r.seq - 1, Detail: fmt.Sprintf("record %d was changed: record %d does not chain to it", r.seq-1, r.seq)})
			return false
		}
		v.next, v.prev = r.seq+1, r.hash
		v.rep.Records++
	}
	if sl == nil {
		if !sf.open || !last {
			v.problem(Finding{Kind: KindTruncated, Segment: name, Line: len(lines) + 1, Seq: v.next,
				Detail: fmt.Sprintf("sealed segment has no seal; records from seq %d may be cut (%d bytes of a partial line)", v.next, torn)})
			return false
		}
		if torn > 0 {
			v.note(Finding{Kind: KindTornTail, Segment: name, Line: len(lines) + 1, Seq: v.next,
				Detail: fmt.Sprintf("partial last line (%d bytes) from an interrupted, unacknowledged write", torn)})
		}
		v.note(Finding{Kind: KindOpen, Segment: name, Detail: "newest segment not sealed yet (writer running or stopped uncleanly)"})
		return true
	}
	if torn > 0 {
		v.problem(Finding{Kind: KindMalformed, Segment: name, Line: len(lines) + 1, Detail: "data after the seal"})
		return false
	}
	ln := len(lines)
	if v.keys.Empty() {
		v.note(Finding{Kind: KindUnchecked, Segment: name, Line: ln, Detail: "no seal key given; seal signature not checked"})
	} else if k, err := v.keys.lookup(sl.Key); err != nil {
		v.problem(Finding{Kind: KindBadSeal, Segment: name, Line: ln, Detail: err.Error()})
		return false
	} else if sl.mac(k.Secret) != sl.MAC {
		v.problem(Finding{Kind: KindBadSeal, Segment: name, Line: ln, Detail: "seal signature does not match"})
		return false
	}
	switch {
	case sl.Seg != sf.idx || sl.Start != hdr.Start || sl.StartPrev != hdr.Prev:
		v.problem(Finding{Kind: KindBadSeal, Segment: name, Line: ln, Detail: "seal belongs to another segment"})
	case sl.Next > v.next:
		v.problem(Finding{Kind: KindDeleted, Segment: name, Line: ln, Seq: v.next, Detail: fmt.Sprintf("records %d to %d missing before the seal", v.next, sl.Next-1)})
	case sl.Next < v.next:
		v.problem(Finding{Kind: KindEdited, Segment: name, Line: ln, Seq: sl.Next, Detail: fmt.Sprintf("records from %d added after sealing", sl.Next)})
	case sl.Hash != hexHash(v.prev):
		v.problem(Finding{Kind: KindEdited, Segment: name, Line: ln - 1, Seq: v.next - 1, Detail: "last record does not match the seal"})
	case sf.open && !last:
		v.problem(Finding{Kind: KindReordered, Segment: name, Detail: "an open segment before the newest one"})
	default:
		return true
	}
	return false
}
