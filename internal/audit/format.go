package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// A segment file holds one JSON object per line:
//
//	{"hdr":{"v":1,"seg":N,"start":S,"prev":"<hex>","created":"<RFC 3339>"}}
//	{"seq":S,"prev":"<hex>","ev":{...event...},"hash":"<hex>"}            plaintext
//	{"seq":S,"prev":"<hex>","k":"<fp>","n":"<b64>","ct":"<b64>","hash":"<hex>"}  encrypted
//	{"seal":{...,"mac":"<hex>"}}                                           last line once sealed
//
// hash = SHA-256("rampart-audit-record-v1" 0x00 || seq (8 bytes, big endian) ||
// prev (32 bytes) || body) where body is 'p' || event JSON, or 'e' || key
// fingerprint || 0x00 || nonce || ciphertext. The chain therefore verifies
// without decryption, and the ciphertext's AAD binds it to (seq, prev).

const formatVersion = 1

type hash32 = [32]byte

var recordDomain = []byte("rampart-audit-record-v1\x00")

func recordHash(seq uint64, prev hash32, plain []byte, fp string, nonce, ct []byte) hash32 {
	h := sha256.New()
	h.Write(recordDomain)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	h.Write(b[:])
	h.Write(prev[:])
	if ct == nil {
		h.Write([]byte{'p'})
		h.Write(plain)
	} else {
		h.Write([]byte{'e'})
		h.Write([]byte(fp))
		h.Write([]byte{0})
		h.Write(nonce)
		h.Write(ct)
	}
	var out hash32
	h.Sum(out[:0])
	return out
}

// gcmAAD binds a ciphertext to its place in the chain.
func gcmAAD(seq uint64, prev hash32) []byte {
	b := make([]byte, 0, 8+32)
	b = binary.BigEndian.AppendUint64(b, seq)
	return append(b, prev[:]...)
}

type header struct {
	V       int       `json:"v"`
	Seg     uint64    `json:"seg"`
	Start   uint64    `json:"start"`
	Prev    string    `json:"prev"`
	Created time.Time `json:"created"`
}

type seal struct {
	Seg       uint64    `json:"seg"`
	Start     uint64    `json:"start"`
	StartPrev string    `json:"start_prev"`
	Next      uint64    `json:"next"`
	Hash      string    `json:"hash"`
	Count     uint64    `json:"count"`
	Created   time.Time `json:"created"`
	Sealed    time.Time `json:"sealed"`
	Recovered bool      `json:"recovered,omitempty"`
	Key       string    `json:"k"`
	MAC       string    `json:"mac"`
}

func (s *seal) mac(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("rampart-audit-seal-v1\x00"))
	var b []byte
	b = binary.BigEndian.AppendUint64(b, s.Seg)
	b = binary.BigEndian.AppendUint64(b, s.Start)
	b = append(b, s.StartPrev...)
	b = binary.BigEndian.AppendUint64(b, s.Next)
	b = append(b, s.Hash...)
	b = binary.BigEndian.AppendUint64(b, s.Count)
	b = binary.BigEndian.AppendUint64(b, uint64(s.Created.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(s.Sealed.UnixNano()))
	if s.Recovered {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}

// anchor is the signed record of what retention pruned: the chain continues
// at Next with Prev as the previous hash, in segment Seg+1.
type anchor struct {
	Seg      uint64    `json:"seg"`
	Next     uint64    `json:"next"`
	Hash     string    `json:"hash"`
	PrunedAt time.Time `json:"pruned_at"`
	Key      string    `json:"k"`
	MAC      string    `json:"mac"`
}

func (a *anchor) mac(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("rampart-audit-anchor-v1\x00"))
	var b []byte
	b = binary.BigEndian.AppendUint64(b, a.Seg)
	b = binary.BigEndian.AppendUint64(b, a.Next)
	b = append(b, a.Hash...)
	b = binary.BigEndian.AppendUint64(b, uint64(a.PrunedAt.UnixNano()))
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}

// line is any line of a segment file.
type line struct {
	Hdr   *header         `json:"hdr,omitempty"`
	Seal  *seal           `json:"seal,omitempty"`
	Seq   uint64          `json:"seq,omitempty"`
	Prev  string          `json:"prev,omitempty"`
	Ev    json.RawMessage `json:"ev,omitempty"`
	Key   string          `json:"k,omitempty"`
	Nonce string          `json:"n,omitempty"`
	CT    string          `json:"ct,omitempty"`
	Hash  string          `json:"hash,omitempty"`
}

var errMalformed = errors.New("malformed line")

func parseLine(b []byte) (line, error) {
	var l line
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return line{}, fmt.Errorf("%w: %w", errMalformed, err)
	}
	if dec.More() {
		return line{}, fmt.Errorf("%w: trailing data", errMalformed)
	}
	n := 0
	if l.Hdr != nil {
		n++
	}
	if l.Seal != nil {
		n++
	}
	if l.Seq != 0 {
		n++
	}
	if n != 1 {
		return line{}, fmt.Errorf("%w: not exactly one of header, record, seal", errMalformed)
	}
	if l.Seq != 0 && (l.Ev == nil) == (l.CT == "") {
		return line{}, fmt.Errorf("%w: record needs exactly one of ev, ct", errMalformed)
	}
	return l, nil
}

// record is a parsed record line with decoded binary fields.
type record struct {
	seq   uint64
	prev  hash32
	hash  hash32
	plain []byte // event JSON when not encrypted
	fp    string
	nonce []byte
	ct    []byte
}

func (l line) record() (record, error) {
	r := record{seq: l.Seq, plain: l.Ev, fp: l.Key}
	var err error
	if r.prev, err = decodeHash(l.Prev); err != nil {
		return r, fmt.Errorf("%w: prev: %w", errMalformed, err)
	}
	if r.hash, err = decodeHash(l.Hash); err != nil {
		return r, fmt.Errorf("%w: hash: %w", errMalformed, err)
	}
	if l.CT != "" {
		if r.nonce, err = base64.RawStdEncoding.DecodeString(l.Nonce); err != nil {
			return r, fmt.Errorf("%w: nonce: %w", errMalformed, err)
		}
		if r.ct, err = base64.RawStdEncoding.DecodeString(l.CT); err != nil {
			return r, fmt.Errorf("%w: ct: %w", errMalformed, err)
		}
	}
	return r, nil
}

func (r record) computeHash() hash32 {
	return recordHash(r.seq, r.prev, r.plain, r.fp, r.nonce, r.ct)
}

func decodeHash(s string) (hash32, error) {
	var h hash32
	if len(s) != 64 {
		return h, fmt.Errorf("hash length %d", len(s))
	}
	_, err := hex.Decode(h[:], []byte(s))
	return h, err
}

func hexHash(h hash32) string { return hex.EncodeToString(h[:]) }

// appendRecord appends one record line to dst.
func appendRecord(dst []byte, seq uint64, prev, h hash32, plain []byte, fp string, nonce, ct []byte) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"prev":"`...)
	dst = hex.AppendEncode(dst, prev[:])
	if ct == nil {
		dst = append(dst, `","ev":`...)
		dst = append(dst, plain...)
		dst = append(dst, `,"hash":"`...)
	} else {
		dst = append(dst, `","k":"`...)
		dst = append(dst, fp...)
		dst = append(dst, `","n":"`...)
		dst = base64.RawStdEncoding.AppendEncode(dst, nonce)
		dst = append(dst, `","ct":"`...)
		dst = base64.RawStdEncoding.AppendEncode(dst, ct)
		dst = append(dst, `","hash":"`...)
	}
	dst = hex.AppendEncode(dst, h[:])
	return append(dst, "\"}\n"...)
}

func marshalLine(v line) []byte {
	b, _ := json.Marshal(v) // header and seal hold only strings, numbers and times
	return append(b, '\n')
}
