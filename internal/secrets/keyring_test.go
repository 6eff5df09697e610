package secrets

import (
	"sync"
	"testing"
)

func v(id, val string) Version { return Version{ID: id, Value: NewSecret([]byte(val))} }

func TestKeyring(t *testing.T) {
	k := NewKeyring(v("1", "one"), nil)
	if got := k.All(); len(got) != 1 || got[0].ID != "1" {
		t.Fatalf("All = %v", got)
	}
	if _, ok := k.Previous(); ok {
		t.Error("previous before rotation")
	}
	k.Rotate(v("2", "two"))
	if k.Current().ID != "2" {
		t.Errorf("Current = %s", k.Current().ID)
	}
	if p, ok := k.Previous(); !ok || p.ID != "1" {
		t.Errorf("Previous = %v %v", p, ok)
	}
	if got := k.All(); len(got) != 2 || got[0].ID != "2" || got[1].ID != "1" {
		t.Errorf("All = %v", got)
	}
	if x, ok := k.Lookup("1"); !ok || string(x.Value.Bytes()) != "one" {
		t.Errorf("Lookup(1) = %v %v", x, ok)
	}
	if _, ok := k.Lookup("3"); ok {
		t.Error("Lookup of an unknown version succeeded")
	}
	// A previous equal to current is dropped.
	same := v("2", "two")
	k2 := NewKeyring(v("2", "two"), &same)
	if len(k2.All()) != 1 {
		t.Errorf("duplicate previous kept: %v", k2.All())
	}
}

func TestKeyringConcurrent(t *testing.T) {
	k := NewKeyring(v("0", "v0"), nil)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 1000 {
			k.Rotate(v(string(rune('a'+i%26)), "x"))
		}
	}()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				all := k.All()
				if len(all) == 0 || all[0].ID != k.Current().ID && len(all) > 2 {
					t.Error("inconsistent keyring")
					return
				}
			}
		}()
	}
	wg.Wait()
}
