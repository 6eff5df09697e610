package store

import "testing"

func TestParseStoreURL(t *testing.T) {
	tests := []struct {
		in      string
		backend string
		target  string
		ok      bool
	}{
		{"sqlite:///var/lib/rampart/rampart.db", "sqlite", "/var/lib/rampart/rampart.db", true},
		{"sqlite://data/rampart.db", "sqlite", "data/rampart.db", true},
		{"sqlite:rampart.db", "sqlite", "rampart.db", true},
		{"/tmp/r.db", "sqlite", "/tmp/r.db", true},
		{"r.db", "sqlite", "r.db", true},
		{"postgres://u@db/rampart?sslmode=require", "postgres", "postgres://u@db/rampart?sslmode=require", true},
		{"postgresql://u@db/rampart", "postgres", "postgresql://u@db/rampart", true},
		{"", "", "", false},
		{"sqlite://", "", "", false},
		{"mysql://u@db/x", "", "", false},
	}
	for _, tt := range tests {
		loc, err := ParseURL(tt.in)
		if (err == nil) != tt.ok || loc.Backend != tt.backend || loc.Target != tt.target {
			t.Errorf("ParseURL(%q) = %+v, %v", tt.in, loc, err)
		}
	}
}
