// Package clientip finds the client's address behind trusted proxies. It
// believes X-Forwarded-For only when the direct peer is a trusted proxy, walks
// the list from the right past every trusted hop, and fails closed: a list it
// cannot parse is an error, never a guess.
package clientip

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// MaxHops bounds how many X-Forwarded-For entries are read.
const MaxHops = 32

// ErrInvalid is returned for an unparsable peer address or forwarding header.
var ErrInvalid = errors.New("invalid client address")

// Resolver resolves client IPs. The zero value trusts no proxy.
type Resolver struct {
	trusted []netip.Prefix
}

// New returns a Resolver that believes forwarding headers from trusted.
func New(trusted []netip.Prefix) *Resolver {
	return &Resolver{trusted: trusted}
}

// Trusted reports whether a is one of the trusted proxies.
func (r *Resolver) Trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Peer parses an http.Request RemoteAddr ("ip:port").
func Peer(remoteAddr string) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		a, aerr := netip.ParseAddr(remoteAddr)
		if aerr != nil {
			return netip.Addr{}, fmt.Errorf("%w: peer %q", ErrInvalid, remoteAddr)
		}
		return a.Unmap(), nil
	}
	return ap.Addr().Unmap(), nil
}

// Resolve returns the client IP for a request from remoteAddr carrying the
// X-Forwarded-For header values xff.
func (r *Resolver) Resolve(remoteAddr string, xff []string) (netip.Addr, error) {
	peer, err := Peer(remoteAddr)
	if err != nil {
		return netip.Addr{}, err
	}
	if len(xff) == 0 || !r.Trusted(peer) {
		return peer, nil
	}
	client := peer
	hops := 0
	for i := len(xff) - 1; i >= 0; i-- {
		rest := xff[i]
		for rest != "" {
			var entry string
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				entry, rest = rest[j+1:], rest[:j]
			} else {
				entry, rest = rest, ""
			}
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			if hops++; hops > MaxHops {
				return netip.Addr{}, fmt.Errorf("%w: more than %d forwarding hops", ErrInvalid, MaxHops)
			}
			a, err := netip.ParseAddr(entry)
			if err != nil || a.Zone() != "" {
				return netip.Addr{}, fmt.Errorf("%w: forwarded entry %q", ErrInvalid, entry)
			}
			client = a.Unmap()
			if !r.Trusted(client) {
				return client, nil
			}
		}
	}
	return client, nil
}
