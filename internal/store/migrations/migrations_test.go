package migrations

import (
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0009_identity.sql": {Data: []byte("B")},
		"m/0001_keys.sql":     {Data: []byte("A")},
	}
	ms, err := Load(fsys, "m")
	if err != nil || len(ms) != 2 || ms[0].Version != 1 || ms[1].SQL != "B" || ms[1].Name != "0009_identity.sql" {
		t.Fatalf("Load = %+v, %v", ms, err)
	}
	for _, bad := range []string{"m/keys.sql", "m/0_zero.sql", "m/x1_bad.sql"} {
		if _, err := Load(fstest.MapFS{bad: {Data: []byte("")}}, "m"); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
