package audit

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSetKeys: keys rotated while the sink is open seal and encrypt what
// follows; the log verifies and exports with both keys, and not with the
// new ones alone.
func TestSetKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	s, err := OpenFile(FileOptions{Dir: dir, SealKeys: sealKeys, Encrypt: true, EncryptionKeys: encKeys, MaxSegmentBytes: 2000})
	must(t, err)
	var evs []Event
	for i := range 20 {
		evs = append(evs, testEvent(i))
	}
	must(t, s.Write(context.Background(), entries(t, evs[:10]...)))
	newSeal, newEnc := testKey("seal-2027", 3), testKey("enc-2027", 4)
	if err := s.SetKeys(Keyring{Current: newSeal}, Keyring{Current: Key{ID: "short", Secret: []byte("x")}}); err == nil {
		t.Fatal("a short encryption key was accepted")
	}
	must(t, s.SetKeys(Keyring{Current: newSeal, Previous: []Key{sealKeys.Current}}, Keyring{Current: newEnc, Previous: []Key{encKeys.Current}}))
	must(t, s.Write(context.Background(), entries(t, evs[10:]...)))
	must(t, s.Close())

	both := Keyring{Current: newSeal, Previous: []Key{sealKeys.Current}}
	if rep, err := Verify(dir, both); err != nil || !rep.OK() {
		t.Fatalf("verify with both seal keys: %+v %v", rep, err)
	}
	if rep, err := Verify(dir, sealKeys); err == nil && rep.OK() {
		t.Fatal("segments sealed with the new key verified with the old one alone")
	}
	var out bytes.Buffer
	must(t, Export(context.Background(), dir, &out, ExportOptions{Keys: Keyring{Current: newEnc, Previous: []Key{encKeys.Current}}}))
	if diff := cmp.Diff(evs, decodeExport(t, out.Bytes()), addrCmp); diff != "" {
		t.Fatalf("export across the rotation (-want +got):\n%s", diff)
	}
	if err := Export(context.Background(), dir, &bytes.Buffer{}, ExportOptions{Keys: Keyring{Current: newEnc}}); err == nil {
		t.Fatal("records encrypted under the old key exported without it")
	}
}
