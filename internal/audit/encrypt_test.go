package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestEncryptionHidesIPsAndKeyIDs(t *testing.T) {
	const plantedIP, plantedKeyID = "203.0.113.77", "key_PLANTED42"
	var evs []Event
	for i := range 20 {
		ev := testEvent(i)
		ev.Type = TypeAuthFailure
		ev.SourceIP = netip.MustParseAddr(plantedIP)
		ev.User = plantedKeyID
		ev.Details = map[string]any{"reason": "revoked", "key_id": plantedKeyID}
		evs = append(evs, ev)
	}
	dir := filepath.Join(t.TempDir(), "audit")
	s, err := OpenFile(FileOptions{Dir: dir, SealKeys: sealKeys, Encrypt: true, EncryptionKeys: encKeys, MaxSegmentBytes: 3000})
	must(t, err)
	must(t, s.Write(context.Background(), entries(t, evs[:10]...)))
	must(t, s.Write(context.Background(), entries(t, evs[10:]...)))
	must(t, s.Close())

	files, err := os.ReadDir(dir)
	must(t, err)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		must(t, err)
		for _, needle := range []string{plantedIP, plantedKeyID, encKeys.Current.ID, sealKeys.Current.ID, "auth.failure"} {
			if bytes.Contains(b, []byte(needle)) {
				t.Errorf("%s contains %q in plaintext", f.Name(), needle)
			}
		}
	}

	var out bytes.Buffer
	must(t, Export(context.Background(), dir, &out, ExportOptions{Keys: encKeys}))
	got := decodeExport(t, out.Bytes())
	if diff := cmp.Diff(evs, got, addrCmp); diff != "" {
		t.Fatalf("export round trip (-want +got):\n%s", diff)
	}
}

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func decodeExport(t *testing.T, b []byte) []Event {
	t.Helper()
	var got []Event
	sc := bufio.NewScanner(bytes.NewReader(b))
	want := uint64(0)
	for sc.Scan() {
		var ev Event
		var seq struct {
			Seq uint64 `json:"seq"`
		}
		must(t, json.Unmarshal(sc.Bytes(), &ev))
		must(t, json.Unmarshal(sc.Bytes(), &seq))
		if seq.Seq <= want {
			t.Fatalf("seq %d after %d", seq.Seq, want)
		}
		want = seq.Seq
		got = append(got, ev)
	}
	return got
}

func TestExportSince(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	s, err := OpenFile(FileOptions{Dir: dir, SealKeys: sealKeys})
	must(t, err)
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var evs []Event
	for i := range 10 {
		ev := testEvent(i)
		ev.Timestamp = base.Add(time.Duration(i) * time.Hour)
		evs = append(evs, ev)
	}
	must(t, s.Write(context.Background(), entries(t, evs...)))
	must(t, s.Close())
	var out bytes.Buffer
	must(t, Export(context.Background(), dir, &out, ExportOptions{Since: base.Add(7 * time.Hour)}))
	if diff := cmp.Diff(evs[7:], decodeExport(t, out.Bytes()), addrCmp); diff != "" {
		t.Fatal(diff)
	}
}

func TestOpenFileRejectsBadKeys(t *testing.T) {
	tests := []struct {
		name string
		o    FileOptions
	}{
		{"no seal key", FileOptions{}},
		{"short seal key", FileOptions{SealKeys: Keyring{Current: Key{ID: "s", Secret: []byte("short")}}}},
		{"encrypt without key", FileOptions{SealKeys: sealKeys, Encrypt: true}},
		{"duplicate ids", FileOptions{SealKeys: Keyring{Current: testKey("a", 1), Previous: []Key{testKey("a", 2)}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Dir = filepath.Join(t.TempDir(), "audit")
			if _, err := OpenFile(tc.o); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestParseKeyFile(t *testing.T) {
	in := `seal_keys:
  - {id: s2, secret: AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=}
  - {id: s1, secret: AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=}
encryption_keys:
  - {id: e1, secret: AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=}
`
	k, err := ParseKeyFile([]byte(in))
	must(t, err)
	if k.Seal.Current.ID != "s2" || len(k.Seal.Previous) != 1 || k.Encryption.Current.Secret[0] != 3 {
		t.Fatalf("%+v", k)
	}
	for _, bad := range []string{"seal_keys: [{id: a, secret: AAAA}]", "unknown: 1", "seal_keys: [{id: a, secret: '!!'}]"} {
		if _, err := ParseKeyFile([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
