package clientip

import (
	"errors"
	"net/netip"
	"testing"
)

func TestResolve(t *testing.T) {
	r := New([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")})
	cases := []struct {
		name   string
		remote string
		xff    []string
		want   string
		err    bool
	}{
		{"untrusted peer ignores header", "203.0.113.9:5000", []string{"1.2.3.4"}, "203.0.113.9", false},
		{"no header", "10.0.0.1:5000", nil, "10.0.0.1", false},
		{"trusted peer", "10.0.0.1:5000", []string{"198.51.100.7"}, "198.51.100.7", false},
		{"rightmost untrusted wins", "10.0.0.1:5000", []string{"6.6.6.6, 198.51.100.7, 10.0.0.2"}, "198.51.100.7", false},
		{"several header lines", "10.0.0.1:5000", []string{"6.6.6.6", "198.51.100.7"}, "198.51.100.7", false},
		{"all trusted", "10.0.0.1:5000", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3", false},
		{"ipv6 peer", "[::1]:443", []string{"2001:db8::1"}, "2001:db8::1", false},
		{"mapped v4", "[::ffff:10.0.0.1]:1", []string{"198.51.100.7"}, "198.51.100.7", false},
		{"empty entries skipped", "10.0.0.1:1", []string{" , 198.51.100.7 ,"}, "198.51.100.7", false},
		{"garbage fails closed", "10.0.0.1:5000", []string{"198.51.100.7, evil"}, "", true},
		{"port in entry refused", "10.0.0.1:5000", []string{"198.51.100.7:80"}, "", true},
		{"zone refused", "10.0.0.1:5000", []string{"fe80::1%eth0"}, "", true},
		{"bad peer", "nonsense", nil, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := r.Resolve(c.remote, c.xff)
			if c.err {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Resolve = %v, %v; want ErrInvalid", got, err)
				}
				return
			}
			if err != nil || got.String() != c.want {
				t.Fatalf("Resolve = %v, %v; want %s", got, err, c.want)
			}
		})
	}
}

func TestResolveTooManyHops(t *testing.T) {
	r := New([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")})
	xff := make([]string, MaxHops+1)
	for i := range xff {
		xff[i] = "10.0.0.1"
	}
	if _, err := r.Resolve("10.0.0.1:1", xff); !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
}

func FuzzResolve(f *testing.F) {
	f.Add("10.0.0.1:80", "1.2.3.4, 10.0.0.2")
	f.Add("[::1]:1", "::ffff:1.2.3.4,,")
	f.Add("x", "")
	r := New([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")})
	f.Fuzz(func(t *testing.T, remote, xff string) {
		a, err := r.Resolve(remote, []string{xff})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if !a.IsValid() || a.Is4In6() {
			t.Fatalf("Resolve(%q, %q) = %v", remote, xff, a)
		}
		peer, _ := Peer(remote)
		if !r.Trusted(peer) && a != peer {
			t.Fatalf("untrusted peer %v but client %v", peer, a)
		}
	})
}
