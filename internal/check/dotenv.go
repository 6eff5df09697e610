package check

import (
	"fmt"
	"strings"
)

// EnvVar is one assignment from a .env file.
type EnvVar struct {
	Key   string
	Value string
	Line  int // line of the key
}

// ParseDotEnv parses a .env file the way docker compose and python-dotenv
// read it: KEY=VALUE lines, optional "export ", # comments, single-quoted
// (literal) and double-quoted (\n \t \" \\ escapes) values that may span
// lines, and " #" comments after unquoted values.
func ParseDotEnv(data []byte) ([]EnvVar, error) {
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	var out []EnvVar
	for i := 0; i < len(lines); i++ {
		lineNo := i + 1
		s := strings.TrimLeft(lines[i], " \t")
		if s == "" || s[0] == '#' {
			continue
		}
		if rest, ok := strings.CutPrefix(s, "export "); ok {
			s = strings.TrimLeft(rest, " \t")
		}
		key, val, ok := strings.Cut(s, "=")
		key = strings.TrimRight(key, " \t")
		if !ok || !validKey(key) {
			return nil, fmt.Errorf("line %d: expected KEY=VALUE", lineNo)
		}
		val = strings.TrimLeft(val, " \t")
		if val != "" && (val[0] == '"' || val[0] == '\'') {
			q := val[0]
			body := val[1:]
			for {
				if end := closingQuote(body, q); end >= 0 {
					tail := strings.TrimSpace(body[end+1:])
					if tail != "" && tail[0] != '#' {
						return nil, fmt.Errorf("line %d: text after closing quote", lineNo)
					}
					body = body[:end]
					break
				}
				i++
				if i >= len(lines) {
					return nil, fmt.Errorf("line %d: unterminated quoted value", lineNo)
				}
				body += "\n" + lines[i]
			}
			if q == '"' {
				body = unescape(body)
			}
			out = append(out, EnvVar{Key: key, Value: body, Line: lineNo})
			continue
		}
		if j := strings.Index(val, " #"); j >= 0 {
			val = val[:j]
		} else if j := strings.Index(val, "\t#"); j >= 0 {
			val = val[:j]
		}
		out = append(out, EnvVar{Key: key, Value: strings.TrimRight(val, " \t"), Line: lineNo})
	}
	return out, nil
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case i > 0 && (c >= '0' && c <= '9' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// closingQuote returns the index of the closing quote q in s, honouring
// backslash escapes inside double quotes, or -1.
func closingQuote(s string, q byte) int {
	for i := 0; i < len(s); i++ {
		switch {
		case q == '"' && s[i] == '\\':
			i++
		case s[i] == q:
			return i
		}
	}
	return -1
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '"', '\\', '$':
			b.WriteByte(s[i])
		default:
			b.WriteByte('\\')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
