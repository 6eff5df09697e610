package wsgate

import (
	"net/url"
	"testing"
)

func TestSplitTicket(t *testing.T) {
	tests := []struct {
		in      string
		tickets []string
		rest    string
	}{
		{"", nil, ""},
		{"ticket=a", []string{"a"}, ""},
		{"x=1&ticket=a&y=%20", []string{"a"}, "x=1&y=%20"},
		{"%74icket=a&ticket=b", []string{"a", "b"}, ""},
		{"ticket", []string{""}, ""},
		{"tickets=a&&x", nil, "tickets=a&x"},
	}
	for _, tt := range tests {
		tickets, rest := splitTicket(tt.in)
		if len(tickets) != len(tt.tickets) || rest != tt.rest {
			t.Errorf("splitTicket(%q) = %q, %q; want %q, %q", tt.in, tickets, rest, tt.tickets, tt.rest)
			continue
		}
		for i := range tickets {
			if tickets[i] != tt.tickets[i] {
				t.Errorf("splitTicket(%q) = %q, want %q", tt.in, tickets, tt.tickets)
			}
		}
	}
}

// FuzzSplitTicket: whatever the query, the part forwarded upstream carries
// no ticket, however its name is escaped.
func FuzzSplitTicket(f *testing.F) {
	for _, s := range []string{"ticket=a", "x=1&ticket=a", "%74icket=a", "ticket%3D=a", "a=b;ticket=c", "ticket=%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		_, rest := splitTicket(q)
		if again, _ := splitTicket(rest); len(again) != 0 {
			t.Fatalf("rest %q of %q still has a ticket", rest, q)
		}
		if v, err := url.ParseQuery(rest); err == nil && v.Has("ticket") {
			t.Fatalf("rest %q of %q parses with a ticket", rest, q)
		}
		_ = queryCarriesKey(q)
	})
}
