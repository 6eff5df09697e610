package identity

import (
	"bytes"
	"testing"
)

func TestKeyringReplace(t *testing.T) {
	k1 := Key{ID: "k1", Secret: bytes.Repeat([]byte{1}, 32)}
	k2 := Key{ID: "k2", Secret: bytes.Repeat([]byte{2}, 32)}
	kr, err := newKeyring([]Key{k1})
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.replace([]Key{k2, k1}); err != nil {
		t.Fatal(err)
	}
	if st := kr.state.Load(); st.current.ID != "k2" || st.byID["k1"] == nil {
		t.Fatalf("after rotation: current %s, k1 kept %v", st.current.ID, st.byID["k1"] != nil)
	}
	if err := kr.replace([]Key{{ID: "short", Secret: []byte("x")}}); err == nil || kr.state.Load().current.ID != "k2" {
		t.Fatalf("a bad replacement took effect: %v", err)
	}
}
