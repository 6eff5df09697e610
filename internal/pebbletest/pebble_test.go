package pebbletest

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"slices"
	"testing"
	"time"
)

func TestDNS(t *testing.T) {
	addr := StartDNS(t, "rampart.test", net.IPv4(127, 0, 0, 1))
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}}
	tests := []struct {
		name     string
		want     []string
		notFound bool
	}{
		{name: "rampart.test", want: []string{"127.0.0.1"}},
		{name: "RAMPART.test.", want: []string{"127.0.0.1"}},
		{name: "other.test", notFound: true},
		{name: "sub.rampart.test", notFound: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := r.LookupHost(ctx, tc.name)
			if tc.notFound {
				var dnsErr *net.DNSError
				if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
					t.Fatalf("LookupHost = %q, %v; want not found", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("LookupHost = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestStart(t *testing.T) {
	s := Start(t, Binary(t), Options{Host: "rampart.test", HTTPPort: 5002, TLSPort: 5001})
	if !s.Root.IsCA {
		t.Errorf("root %q is not a CA", s.Root.Subject)
	}
	resp, err := s.HTTPClient(t).Get(s.DirectoryURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var dir map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&dir); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"newNonce", "newAccount", "newOrder"} {
		if _, ok := dir[k]; !ok {
			t.Errorf("directory lacks %s: %v", k, dir)
		}
	}
	s.Stop(t)
	s.Stop(t) // a second Stop is harmless
	if _, err := s.HTTPClient(t).Get(s.DirectoryURL); err == nil {
		t.Error("directory still answers after Stop")
	}
}
