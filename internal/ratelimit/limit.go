package ratelimit

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Bounds on a Limit, so that the state arithmetic never overflows and the
// Redis implementation (microsecond resolution) represents it exactly enough.
const (
	MaxCount    = 1_000_000_000
	MaxPeriod   = 31 * 24 * time.Hour
	MinInterval = time.Microsecond
)

// ErrInvalidLimit is wrapped by every error about a malformed or out-of-range
// limit.
var ErrInvalidLimit = errors.New("invalid rate limit")

// Limit is N requests per period W with a burst of B.
//
// The text form, accepted by [ParseLimit] and produced by [Limit.String], is
//
//	<count>/[<multiplier>]<unit>[ burst <burst>]
//
// where unit is one of s, sec, second, seconds, m, min, minute, minutes, h,
// hr, hour, hours, d, day, days (case-insensitive), e.g. "60/min", "100/minute",
// "1000/hour", "5/s", "100/10s", "60/min burst 10". Spaces around the tokens
// are allowed. Configuration that prefers a separate field may set Burst
// directly on a parsed Limit.
type Limit struct {
	// Count is N, the number of requests admitted per Period.
	Count int
	// Period is W.
	Period time.Duration
	// Burst is B, how many requests a subject with no recent traffic may
	// make at once, 1 ≤ B ≤ Count. Zero means Count.
	Burst int
}

// Interval is the emission interval W/N: the time one request's worth of
// quota takes to come back.
func (l Limit) Interval() time.Duration { return l.Period / time.Duration(l.Count) }

// Capacity is the effective burst: Burst, or Count when Burst is zero.
func (l Limit) Capacity() int {
	if l.Burst == 0 {
		return l.Count
	}
	return l.Burst
}

// Validate reports whether l is usable by a limiter.
func (l Limit) Validate() error {
	switch {
	case l.Count < 1 || l.Count > MaxCount:
		return fmt.Errorf("%w: count %d out of range 1..%d", ErrInvalidLimit, l.Count, MaxCount)
	case l.Period < time.Second || l.Period > MaxPeriod:
		return fmt.Errorf("%w: period %s out of range 1s..%s", ErrInvalidLimit, l.Period, MaxPeriod)
	case l.Period%time.Second != 0:
		return fmt.Errorf("%w: period %s is not a whole number of seconds", ErrInvalidLimit, l.Period)
	case l.Interval() < MinInterval:
		return fmt.Errorf("%w: %d per %s is finer than one request per %s", ErrInvalidLimit, l.Count, l.Period, MinInterval)
	case l.Burst < 0 || l.Burst > l.Count:
		return fmt.Errorf("%w: burst %d out of range 1..%d", ErrInvalidLimit, l.Burst, l.Count)
	}
	return nil
}

var units = []struct {
	names []string
	d     time.Duration
	canon string
}{
	{[]string{"d", "day", "days"}, 24 * time.Hour, "day"},
	{[]string{"h", "hr", "hour", "hours"}, time.Hour, "hour"},
	{[]string{"m", "min", "minute", "minutes"}, time.Minute, "min"},
	{[]string{"s", "sec", "second", "seconds"}, time.Second, "s"},
}

// ParseLimit parses the text form documented on [Limit]. The result is
// validated; a Limit without an explicit burst has Burst == Count.
func ParseLimit(s string) (Limit, error) {
	l, err := parseLimit(s)
	if err != nil {
		return Limit{}, fmt.Errorf("%w %q: %s", ErrInvalidLimit, s, err)
	}
	if err := l.Validate(); err != nil {
		return Limit{}, fmt.Errorf("parse %q: %w", s, err)
	}
	return l, nil
}

func parseLimit(s string) (Limit, error) {
	rate, burst, hasBurst := strings.Cut(strings.TrimSpace(s), "burst")
	count, per, ok := strings.Cut(rate, "/")
	if !ok {
		return Limit{}, errors.New(`want "<count>/<unit>"`)
	}
	n, err := parseUint(strings.TrimSpace(count))
	if err != nil {
		return Limit{}, fmt.Errorf("count: %s", err)
	}
	per = strings.ToLower(strings.TrimSpace(per))
	i := 0
	for i < len(per) && per[i] >= '0' && per[i] <= '9' {
		i++
	}
	mult := 1
	if i > 0 {
		if mult, err = parseUint(per[:i]); err != nil {
			return Limit{}, fmt.Errorf("period multiplier: %s", err)
		}
	}
	unit := strings.TrimSpace(per[i:])
	var d time.Duration
	for _, u := range units {
		for _, name := range u.names {
			if unit == name {
				d = u.d
			}
		}
	}
	if d == 0 {
		return Limit{}, fmt.Errorf("unknown unit %q", unit)
	}
	if mult < 1 || time.Duration(mult) > MaxPeriod/d {
		return Limit{}, fmt.Errorf("period longer than %s", MaxPeriod)
	}
	l := Limit{Count: n, Period: time.Duration(mult) * d, Burst: n}
	if hasBurst {
		b := strings.TrimSpace(burst)
		if b == "" || b[0] == '=' {
			return Limit{}, errors.New(`want "burst <n>"`)
		}
		if l.Burst, err = parseUint(b); err != nil {
			return Limit{}, fmt.Errorf("burst: %s", err)
		}
		if l.Burst < 1 {
			return Limit{}, errors.New("burst must be at least 1")
		}
	}
	return l, nil
}

// parseUint accepts 1 to 10 ASCII digits.
func parseUint(s string) (int, error) {
	if s == "" || len(s) > 10 {
		return 0, errors.New("want 1 to 10 digits")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a number", s)
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return n, nil
}

// String returns the canonical text form, which ParseLimit accepts and maps
// back to l (with a zero Burst made explicit only when it differs from Count).
func (l Limit) String() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(l.Count))
	b.WriteByte('/')
	for _, u := range units {
		if l.Period >= u.d && l.Period%u.d == 0 {
			if k := l.Period / u.d; k != 1 {
				b.WriteString(strconv.FormatInt(int64(k), 10))
			}
			b.WriteString(u.canon)
			break
		}
	}
	if l.Period < time.Second || l.Period%time.Second != 0 {
		b.WriteString(strconv.FormatFloat(l.Period.Seconds(), 'f', -1, 64))
		b.WriteString("s")
	}
	if l.Burst != 0 && l.Burst != l.Count {
		b.WriteString(" burst ")
		b.WriteString(strconv.Itoa(l.Burst))
	}
	return b.String()
}

// MarshalText implements encoding.TextMarshaler with [Limit.String].
func (l Limit) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with [ParseLimit], so a
// Limit can be a plain string in YAML or JSON configuration.
func (l *Limit) UnmarshalText(b []byte) error {
	v, err := ParseLimit(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}
