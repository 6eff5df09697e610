package ratelimit

import (
	"errors"
	"testing"
	"time"
)

func TestParseLimit(t *testing.T) {
	tests := []struct {
		in   string
		want Limit
	}{
		{"60/min", Limit{60, time.Minute, 60}},
		{"100/minute", Limit{100, time.Minute, 100}},
		{"1000/hour", Limit{1000, time.Hour, 1000}},
		{"5/s", Limit{5, time.Second, 5}},
		{"5/second", Limit{5, time.Second, 5}},
		{"10000/day", Limit{10000, 24 * time.Hour, 10000}},
		{"100/10s", Limit{100, 10 * time.Second, 100}},
		{"30/5min", Limit{30, 5 * time.Minute, 30}},
		{"60/min burst 10", Limit{60, time.Minute, 10}},
		{"  60 / MIN   burst   10 ", Limit{60, time.Minute, 10}},
		{"1/h", Limit{1, time.Hour, 1}},
		{"1000000/s", Limit{1_000_000, time.Second, 1_000_000}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseLimit(tt.in)
			if err != nil {
				t.Fatalf("ParseLimit(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseLimit(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseLimitErrors(t *testing.T) {
	for _, in := range []string{
		"", "60", "60/", "/min", "60/fortnight", "-1/min", "0/min", "+5/min", "5.5/min",
		"60/min burst", "60/min burst 0", "60/min burst 61", "60/min burst=10", "60/min burst x",
		"2000000/s", "1/32day", "1/0s", "99999999999/min", "60/min/min", "60/min burst 10 burst 2",
	} {
		t.Run(in, func(t *testing.T) {
			if l, err := ParseLimit(in); err == nil {
				t.Fatalf("ParseLimit(%q) = %+v, want error", in, l)
			} else if !errors.Is(err, ErrInvalidLimit) {
				t.Fatalf("ParseLimit(%q) error %v does not wrap ErrInvalidLimit", in, err)
			}
		})
	}
}

func TestLimitString(t *testing.T) {
	tests := []struct {
		l    Limit
		want string
	}{
		{Limit{60, time.Minute, 60}, "60/min"},
		{Limit{60, time.Minute, 0}, "60/min"},
		{Limit{60, time.Minute, 10}, "60/min burst 10"},
		{Limit{100, 10 * time.Second, 100}, "100/10s"},
		{Limit{1000, time.Hour, 1000}, "1000/hour"},
		{Limit{5, 48 * time.Hour, 5}, "5/2day"},
		{Limit{5, 90 * time.Minute, 5}, "5/90min"},
	}
	for _, tt := range tests {
		if got := tt.l.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.l, got, tt.want)
		}
	}
}

func TestLimitText(t *testing.T) {
	var l Limit
	if err := l.UnmarshalText([]byte("50/min burst 5")); err != nil {
		t.Fatal(err)
	}
	b, _ := l.MarshalText()
	if string(b) != "50/min burst 5" {
		t.Fatalf("MarshalText = %q", b)
	}
	if err := l.UnmarshalText([]byte("nope")); err == nil {
		t.Fatal("UnmarshalText accepted garbage")
	}
}

func FuzzParseLimit(f *testing.F) {
	for _, s := range []string{"60/min", "100/minute", "1000/hour", "5/s", "60/min burst 10", "100/10s", "1/day", " 7 / 3h burst 2 ", "0/min", "1/0s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLimit(s)
		if err != nil {
			return
		}
		if err := l.Validate(); err != nil {
			t.Fatalf("ParseLimit(%q) returned invalid %+v: %v", s, l, err)
		}
		back, err := ParseLimit(l.String())
		if err != nil || back != l {
			t.Fatalf("round trip %q -> %+v -> %q -> %+v, %v", s, l, l.String(), back, err)
		}
		// The decision arithmetic must not overflow for any valid limit.
		now := time.Unix(1_700_000_000, 0)
		r, next, err := Decide(now, time.Time{}, l, l.Capacity())
		if err != nil || !r.Allowed || r.Remaining != 0 || next.Before(now) {
			t.Fatalf("Decide full burst of %+v: %+v next %v err %v", l, r, next, err)
		}
	})
}
