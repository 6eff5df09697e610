package audit

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVerifyUntouched(t *testing.T) {
	for _, enc := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "encrypted"}[enc], func(t *testing.T) {
			dir := writeLog(t, FileOptions{Encrypt: enc, EncryptionKeys: encKeys, MaxSegmentBytes: 2000}, 60, 4)
			if n := len(segPaths(t, dir)); n < 3 {
				t.Fatalf("want several segments, got %d", n)
			}
			rep, err := Verify(dir, sealKeys)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() || len(rep.Notes) != 0 {
				t.Fatalf("untouched log: problems %v notes %v", rep.Problems, rep.Notes)
			}
			if rep.Records != 60 || rep.Next != 61 || rep.First != 1 {
				t.Fatalf("report %+v", rep)
			}
		})
	}
}

// recordLineIndex returns the index in lines of the record with seq.
func recordLineIndex(t *testing.T, lines [][]byte, seq uint64) int {
	t.Helper()
	for i, b := range lines {
		l, err := parseLine(bytes.TrimSuffix(b, []byte("\n")))
		if err == nil && l.Seq == seq {
			return i
		}
	}
	t.Fatalf("seq %d not found", seq)
	return 0
}

// segmentWith returns the path of the segment holding seq.
func segmentWith(t *testing.T, dir string, seq uint64) string {
	t.Helper()
	for _, p := range segPaths(t, dir) {
		for _, b := range readLines(t, p) {
			if l, err := parseLine(bytes.TrimSuffix(b, []byte("\n"))); err == nil && l.Seq == seq {
				return p
			}
		}
	}
	t.Fatalf("seq %d not in any segment", seq)
	return ""
}

func TestVerifyDetectsTampering(t *testing.T) {
	tests := []struct {
		name    string
		encrypt bool
		keys    Keyring
		tamper  func(t *testing.T, dir string)
		kind    Kind
		seq     uint64 // 0: not checked
	}{
		{name: "edit a field", tamper: func(t *testing.T, dir string) {
			p := segmentWith(t, dir, 20)
			lines := readLines(t, p)
			i := recordLineIndex(t, lines, 20)
			lines[i] = bytes.Replace(lines[i], []byte(`"route":"simulation"`), []byte(`"route":"simulatiom"`), 1)
			writeLines(t, p, lines)
		}, kind: KindEdited, seq: 20},
		{name: "edit and recompute the record hash", tamper: func(t *testing.T, dir string) {
			p := segmentWith(t, dir, 20)
			lines := readLines(t, p)
			i := recordLineIndex(t, lines, 20)
			l, _ := parseLine(bytes.TrimSuffix(lines[i], []byte("\n")))
			r, _ := l.record()
			r.plain = bytes.Replace(r.plain, []byte(`10.0.1.50`), []byte(`10.0.1.51`), 1)
			lines[i] = appendRecord(nil, r.seq, r.prev, r.computeHash(), r.plain, "", nil, nil)
			writeLines(t, p, lines)
		}, kind: KindEdited, seq: 20},
		{name: "edit ciphertext", encrypt: true, tamper: func(t *testing.T, dir string) {
			p := segmentWith(t, dir, 20)
			lines := readLines(t, p)
			i := recordLineIndex(t, lines, 20)
			j := bytes.Index(lines[i], []byte(`"ct":"`)) + 8
			if lines[i][j] == 'A' {
				lines[i][j] = 'B'
			} else {
				lines[i][j] = 'A'
			}
			writeLines(t, p, lines)
		}, kind: KindEdited, seq: 20},
		{name: "delete a record", tamper: func(t *testing.T, dir string) {
			p := segmentWith(t, dir, 20)
			lines := readLines(t, p)
			i := recordLineIndex(t, lines, 20)
			writeLines(t, p, append(lines[:i:i], lines[i+1:]...))
		}, kind: KindDeleted, seq: 20},
		{name: "delete the last record before the seal", tamper: func(t *testing.T, dir string) {
			p := segPaths(t, dir)[1]
			lines := readLines(t, p)
			n := len(lines) - 1 // last element is empty after the final newline
			writeLines(t, p, append(lines[:n-2:n-2], lines[n-1:]...))
		}, kind: KindDeleted},
		{name: "reorder two records", tamper: func(t *testing.T, dir string) {
			p := segmentWith(t, dir, 20)
			lines := readLines(t, p)
			i := recordLineIndex(t, lines, 20)
			j := recordLineIndex(t, lines, 21)
			lines[i], lines[j] = lines[j], lines[i]
			writeLines(t, p, lines)
		}, kind: KindReordered, seq: 20},
		{name: "truncate a sealed segment mid-line", tamper: func(t *testing.T, dir string) {
			p := segPaths(t, dir)[1]
			st, _ := os.Stat(p)
			if err := os.Truncate(p, st.Size()-300); err != nil {
				t.Fatal(err)
			}
		}, kind: KindTruncated},
		{name: "truncate the newest segment at a line end", tamper: func(t *testing.T, dir string) {
			ps := segPaths(t, dir)
			p := ps[len(ps)-1]
			lines := readLines(t, p)
			writeLines(t, p, lines[:len(lines)-3])
		}, kind: KindTruncated},
		{name: "delete a middle segment", tamper: func(t *testing.T, dir string) {
			if err := os.Remove(segPaths(t, dir)[1]); err != nil {
				t.Fatal(err)
			}
		}, kind: KindMissing},
		{name: "delete the first segment", tamper: func(t *testing.T, dir string) {
			if err := os.Remove(segPaths(t, dir)[0]); err != nil {
				t.Fatal(err)
			}
		}, kind: KindMissing, seq: 1},
		{name: "swap two segment files", tamper: func(t *testing.T, dir string) {
			ps := segPaths(t, dir)
			tmp := filepath.Join(dir, "x")
			must(t, os.Rename(ps[1], tmp))
			must(t, os.Rename(ps[2], ps[1]))
			must(t, os.Rename(tmp, ps[2]))
		}, kind: KindReordered},
		{name: "edit a seal", tamper: func(t *testing.T, dir string) {
			p := segPaths(t, dir)[1]
			lines := readLines(t, p)
			n := len(lines) - 2
			lines[n] = bytes.Replace(lines[n], []byte(`"count":`), []byte(`"count":1`), 1)
			writeLines(t, p, lines)
		}, kind: KindBadSeal},
		{name: "seal key not in keyring", keys: Keyring{Current: testKey("other", 9)}, tamper: func(*testing.T, string) {}, kind: KindBadSeal},
		{name: "garbage line", tamper: func(t *testing.T, dir string) {
			p := segPaths(t, dir)[1]
			lines := readLines(t, p)
			lines = append(lines[:3:3], append([][]byte{[]byte("not json\n")}, lines[3:]...)...)
			writeLines(t, p, lines)
		}, kind: KindMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeLog(t, FileOptions{Encrypt: tc.encrypt, EncryptionKeys: encKeys, MaxSegmentBytes: 2000}, 60, 4)
			tc.tamper(t, dir)
			keys := tc.keys
			if keys.Empty() {
				keys = sealKeys
			}
			rep, err := Verify(dir, keys)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() {
				t.Fatalf("tampering not detected; notes %v", rep.Notes)
			}
			got := rep.Problems[0]
			if got.Kind != tc.kind || (tc.seq != 0 && got.Seq != tc.seq) {
				t.Fatalf("got %v, want kind %s seq %d", got, tc.kind, tc.seq)
			}
			if !strings.Contains(got.String(), string(tc.kind)) {
				t.Fatalf("String() = %q", got.String())
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// crash abandons a sink as a killed process would: no seal, lock released.
func crash(s *FileSink) {
	s.f.Close()
	s.lock.Close()
}

func TestTornTailAndRecovery(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	o := FileOptions{Dir: dir, SealKeys: sealKeys, Encrypt: true, EncryptionKeys: encKeys}
	s, err := OpenFile(o)
	must(t, err)
	must(t, s.Write(context.Background(), entries(t, testEvent(1), testEvent(2), testEvent(3))))
	open := s.f.Name()
	crash(s)

	// A crash in the middle of the next group's write leaves a partial line.
	f, err := os.OpenFile(open, os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteString(`{"seq":4,"prev":"00`)
	must(t, err)
	must(t, f.Close())

	rep, err := Verify(dir, sealKeys)
	must(t, err)
	if !rep.OK() {
		t.Fatalf("torn tail reported as tampering: %v", rep.Problems)
	}
	if len(rep.Notes) == 0 || rep.Notes[0].Kind != KindTornTail || rep.Records != 3 {
		t.Fatalf("notes %v records %d", rep.Notes, rep.Records)
	}

	// The next start cuts the torn tail, seals the segment and continues the chain.
	s, err = OpenFile(o)
	must(t, err)
	must(t, s.Write(context.Background(), entries(t, testEvent(4))))
	must(t, s.Close())
	rep, err = Verify(dir, sealKeys)
	must(t, err)
	if !rep.OK() || len(rep.Notes) != 0 || rep.Records != 4 || rep.Segments != 2 {
		t.Fatalf("after recovery: %+v", rep)
	}
}

func TestOpenSegmentIsANote(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	s, err := OpenFile(FileOptions{Dir: dir, SealKeys: sealKeys})
	must(t, err)
	defer s.Close()
	must(t, s.Write(context.Background(), entries(t, testEvent(1))))
	rep, err := Verify(dir, sealKeys)
	must(t, err)
	if !rep.OK() || len(rep.Notes) != 1 || rep.Notes[0].Kind != KindOpen {
		t.Fatalf("%+v", rep)
	}
	if _, err := OpenFile(FileOptions{Dir: dir, SealKeys: sealKeys}); err == nil {
		t.Fatal("second writer on the same dir was allowed")
	}
}

func TestVerifyAcrossKeyRotation(t *testing.T) {
	dir := writeLog(t, FileOptions{Encrypt: true, EncryptionKeys: encKeys}, 5, 5)
	newSeal := Keyring{Current: testKey("seal-2027", 3), Previous: []Key{sealKeys.Current}}
	newEnc := Keyring{Current: testKey("enc-2027", 4), Previous: []Key{encKeys.Current}}
	writeLog(t, FileOptions{Dir: dir, SealKeys: newSeal, Encrypt: true, EncryptionKeys: newEnc}, 5, 5)
	rep, err := Verify(dir, newSeal)
	must(t, err)
	if !rep.OK() || rep.Records != 10 {
		t.Fatalf("%+v", rep)
	}
	var out bytes.Buffer
	must(t, Export(context.Background(), dir, &out, ExportOptions{Keys: newEnc}))
	if n := bytes.Count(out.Bytes(), []byte("\n")); n != 10 {
		t.Fatalf("exported %d events", n)
	}
	if err := Export(context.Background(), dir, &out, ExportOptions{Keys: Keyring{Current: newEnc.Current}}); err == nil {
		t.Fatal("export without the old key succeeded")
	}
}

func TestDirPermissions(t *testing.T) {
	dir := writeLog(t, FileOptions{}, 3, 3)
	st, err := os.Stat(dir)
	must(t, err)
	if st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %o", st.Mode().Perm())
	}
	for _, p := range segPaths(t, dir) {
		st, err := os.Stat(p)
		must(t, err)
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %o", p, st.Mode().Perm())
		}
	}
	loose := t.TempDir()
	must(t, os.Chmod(loose, 0o755))
	if _, err := OpenFile(FileOptions{Dir: loose, SealKeys: sealKeys}); err == nil {
		t.Fatal("group/world-readable dir accepted")
	}
}
