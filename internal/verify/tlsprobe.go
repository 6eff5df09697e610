package verify

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// TLS versions on the wire.
const (
	wireTLS10 uint16 = 0x0301
	wireTLS11 uint16 = 0x0302
	wireTLS12 uint16 = 0x0303
)

// suite is a TLS cipher suite by IANA number and name. The scanner speaks the
// first flight of TLS itself (a ClientHello, then reading the ServerHello),
// so it can offer suites and versions Go's crypto/tls no longer implements
// (export, anonymous, NULL) and offer exactly one at a time.
type suite struct {
	id   uint16
	name string
}

// nonECDHESuites have no ECDHE key exchange (RSA key transport or DHE).
var nonECDHESuites = []suite{
	{0x009c, "TLS_RSA_WITH_AES_128_GCM_SHA256"},
	{0x009d, "TLS_RSA_WITH_AES_256_GCM_SHA384"},
	{0x002f, "TLS_RSA_WITH_AES_128_CBC_SHA"},
	{0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA"},
	{0x003c, "TLS_RSA_WITH_AES_128_CBC_SHA256"},
	{0x003d, "TLS_RSA_WITH_AES_256_CBC_SHA256"},
	{0x0041, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA"},
	{0x0084, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA"},
	{0x009e, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"},
	{0x009f, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"},
	{0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"},
	{0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"},
	{0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256"},
	{0x006b, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256"},
	{0xccaa, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
}

// cbcSuites are ECDHE suites with CBC-mode (MAC-then-encrypt) ciphers.
var cbcSuites = []suite{
	{0xc009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"},
	{0xc00a, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"},
	{0xc013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"},
	{0xc014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"},
	{0xc023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"},
	{0xc024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"},
	{0xc027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"},
	{0xc028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"},
}

// brokenSuites are RC4, 3DES, single DES, NULL, export and anonymous suites.
var brokenSuites = []suite{
	{0x0004, "TLS_RSA_WITH_RC4_128_MD5"},
	{0x0005, "TLS_RSA_WITH_RC4_128_SHA"},
	{0xc007, "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA"},
	{0xc011, "TLS_ECDHE_RSA_WITH_RC4_128_SHA"},
	{0x000a, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"},
	{0x0016, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA"},
	{0xc008, "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA"},
	{0xc012, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"},
	{0x0009, "TLS_RSA_WITH_DES_CBC_SHA"},
	{0x0001, "TLS_RSA_WITH_NULL_MD5"},
	{0x0002, "TLS_RSA_WITH_NULL_SHA"},
	{0x003b, "TLS_RSA_WITH_NULL_SHA256"},
	{0xc006, "TLS_ECDHE_ECDSA_WITH_NULL_SHA"},
	{0xc010, "TLS_ECDHE_RSA_WITH_NULL_SHA"},
	{0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5"},
	{0x0006, "TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5"},
	{0x0008, "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA"},
	{0x0014, "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA"},
	{0x0018, "TLS_DH_anon_WITH_RC4_128_MD5"},
	{0x0034, "TLS_DH_anon_WITH_AES_128_CBC_SHA"},
	{0x00a6, "TLS_DH_anon_WITH_AES_128_GCM_SHA256"},
	{0xc018, "TLS_ECDH_anon_WITH_AES_128_CBC_SHA"},
}

// goodSuites are the ECDHE AEAD suites the checklists ask for; the control
// probe offers them to prove the probe itself works.
var goodSuites = []suite{
	{0xc02b, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
	{0xc02f, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
	{0xc02c, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"},
	{0xc030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"},
	{0xcca9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"},
	{0xcca8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
}

// legacySuites are offered when probing TLS 1.0 and 1.1: everything such a
// server could pick.
var legacySuites = []suite{
	{0xc013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"},
	{0xc014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"},
	{0xc009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"},
	{0xc00a, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"},
	{0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"},
	{0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"},
	{0x002f, "TLS_RSA_WITH_AES_128_CBC_SHA"},
	{0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA"},
	{0x000a, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"},
	{0x0005, "TLS_RSA_WITH_RC4_128_SHA"},
}

func versionName(v uint16) string {
	switch v {
	case 0x0300:
		return "SSL 3.0"
	case wireTLS10:
		return "TLS 1.0"
	case wireTLS11:
		return "TLS 1.1"
	case wireTLS12:
		return "TLS 1.2"
	case 0x0304:
		return "TLS 1.3"
	}
	return fmt.Sprintf("0x%04x", v)
}

// helloResult is what the server answered to one ClientHello.
type helloResult struct {
	accepted bool   // a ServerHello that picked an offered suite and version
	version  uint16 // from the ServerHello
	suite    uint16 // from the ServerHello
	alert    byte   // alert description when the server refused with an alert
	err      error  // connection closed or reset without an alert, or a malformed answer
}

// String describes the answer for evidence.
func (h helloResult) String() string {
	switch {
	case h.accepted:
		return fmt.Sprintf("ServerHello: %s, suite 0x%04x %s", versionName(h.version), h.suite, suiteName(h.suite))
	case h.alert != 0:
		return fmt.Sprintf("alert %d (%s)", h.alert, alertName(h.alert))
	case h.err != nil:
		return "no ServerHello: " + h.err.Error()
	}
	return fmt.Sprintf("ServerHello for something not offered: %s, suite 0x%04x", versionName(h.version), h.suite)
}

func suiteName(id uint16) string {
	for _, list := range [][]suite{goodSuites, nonECDHESuites, cbcSuites, brokenSuites, legacySuites} {
		for _, s := range list {
			if s.id == id {
				return s.name
			}
		}
	}
	return "unknown"
}

func alertName(d byte) string {
	switch d {
	case 40:
		return "handshake_failure"
	case 47:
		return "illegal_parameter"
	case 50:
		return "decode_error"
	case 70:
		return "protocol_version"
	case 71:
		return "insufficient_security"
	case 80:
		return "internal_error"
	case 86:
		return "inappropriate_fallback"
	case 112:
		return "unrecognized_name"
	}
	return "alert"
}

// probeHello sends one ClientHello offering version and suites to addr and
// reads the answer up to the ServerHello.
func (r *runner) probeHello(ctx context.Context, addr, serverName string, version uint16, suites []suite) helloResult {
	release, err := r.acquire(ctx)
	if err != nil {
		return helloResult{err: err}
	}
	defer release()
	r.total.Add(1)
	d := net.Dialer{Timeout: r.opts.Timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return helloResult{err: err}
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(r.opts.Timeout))
	random := make([]byte, 32)
	if _, err := io.ReadFull(r.opts.Rand, random); err != nil {
		return helloResult{err: fmt.Errorf("client random: %w", err)}
	}
	ids := make([]uint16, len(suites))
	for i, s := range suites {
		ids[i] = s.id
	}
	if _, err := conn.Write(clientHello(version, ids, serverName, random)); err != nil {
		return helloResult{err: err}
	}
	res := readServerHello(conn)
	if res.err == nil && res.alert == 0 {
		offered := false
		for _, id := range ids {
			offered = offered || id == res.suite
		}
		res.accepted = offered && res.version == version
	}
	return res
}

// clientHello encodes a TLS record holding one ClientHello. No
// supported_versions extension is sent, so the server cannot pick TLS 1.3.
func clientHello(version uint16, suites []uint16, serverName string, random []byte) []byte {
	var ext []byte
	if serverName != "" && net.ParseIP(serverName) == nil {
		name := []byte(serverName)
		sni := u16(len(name) + 3)
		sni = append(sni, 0)
		sni = append(sni, u16(len(name))...)
		sni = append(sni, name...)
		ext = appendExt(ext, 0x0000, sni)
	}
	groups := []uint16{0x001d, 0x0017, 0x0018, 0x0019, 0x0100, 0x0101}
	ext = appendExt(ext, 0x000a, u16list(groups))
	ext = appendExt(ext, 0x000b, []byte{1, 0})
	sigs := []uint16{0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0203, 0x0201, 0x0202}
	ext = appendExt(ext, 0x000d, u16list(sigs))
	ext = appendExt(ext, 0x0017, nil)       // extended_master_secret
	ext = appendExt(ext, 0xff01, []byte{0}) // renegotiation_info

	body := u16(int(version))
	body = append(body, random...)
	body = append(body, 0) // session id
	cs := make([]byte, 0, 2*len(suites))
	for _, s := range suites {
		cs = binary.BigEndian.AppendUint16(cs, s)
	}
	body = append(body, u16(len(cs))...)
	body = append(body, cs...)
	body = append(body, 1, 0) // compression: null
	body = append(body, u16(len(ext))...)
	body = append(body, ext...)

	hs := []byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}
	hs = append(hs, body...)
	rec := []byte{22, 3, 1}
	rec = append(rec, u16(len(hs))...)
	return append(rec, hs...)
}

func u16(n int) []byte { return []byte{byte(n >> 8), byte(n)} }

func u16list(vs []uint16) []byte {
	b := u16(2 * len(vs))
	for _, v := range vs {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	return b
}

func appendExt(b []byte, typ uint16, data []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, typ)
	b = append(b, u16(len(data))...)
	return append(b, data...)
}

// errNoServerHello is the answer when the server closed without a word.
var errNoServerHello = errors.New("connection closed before a ServerHello")

// readServerHello reads records until a ServerHello or an alert arrives.
// Handshake messages may span records; only the first message matters.
func readServerHello(rd io.Reader) helloResult {
	var hs []byte
	for range 8 {
		var hdr [5]byte
		if _, err := io.ReadFull(rd, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return helloResult{err: errNoServerHello}
			}
			return helloResult{err: err}
		}
		n := int(binary.BigEndian.Uint16(hdr[3:]))
		if n > 1<<14+2048 {
			return helloResult{err: fmt.Errorf("record of %d bytes", n)}
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(rd, payload); err != nil {
			return helloResult{err: errNoServerHello}
		}
		switch hdr[0] {
		case 21: // alert
			if n >= 2 {
				return helloResult{alert: payload[1]}
			}
			return helloResult{err: errors.New("short alert")}
		case 22: // handshake
			hs = append(hs, payload...)
			if res, ok := parseServerHello(hs); ok {
				return res
			}
		default:
			return helloResult{err: fmt.Errorf("unexpected record type %d", hdr[0])}
		}
	}
	return helloResult{err: errors.New("no ServerHello in the first records")}
}

// parseServerHello parses hs when it holds a whole first handshake message.
func parseServerHello(hs []byte) (helloResult, bool) {
	if len(hs) < 4 {
		return helloResult{}, false
	}
	n := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
	if len(hs) < 4+n {
		return helloResult{}, false
	}
	if hs[0] != 2 {
		return helloResult{err: fmt.Errorf("first handshake message has type %d, not ServerHello", hs[0])}, true
	}
	m := hs[4 : 4+n]
	if len(m) < 2+32+1 {
		return helloResult{err: errors.New("short ServerHello")}, true
	}
	version := binary.BigEndian.Uint16(m)
	sidLen := int(m[34])
	if len(m) < 35+sidLen+2 {
		return helloResult{err: errors.New("short ServerHello")}, true
	}
	return helloResult{version: version, suite: binary.BigEndian.Uint16(m[35+sidLen:])}, true
}
