package nats

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// EscapeToken makes s one NATS subject token (and KV key token); see the package doc.
func EscapeToken(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "_%02X", c)
		}
	}
	if b.Len() == 0 {
		return "_" // an empty part (the core group) still takes its place
	}
	return b.String()
}

// UnescapeToken is the inverse of EscapeToken.
func UnescapeToken(t string) (string, error) {
	if t == "_" {
		return "", nil
	}
	var b strings.Builder
	for i := 0; i < len(t); i++ {
		if t[i] != '_' {
			b.WriteByte(t[i])
			continue
		}
		if i+2 >= len(t) {
			return "", fmt.Errorf("token %q: truncated escape at %d", t, i)
		}
		v, err := strconv.ParseUint(t[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("token %q: bad escape at %d", t, i)
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// KeyTokens is an entity key as four escaped tokens joined by dots.
func KeyTokens(key mesh.Key) string {
	return EscapeToken(key.Group) + "." + EscapeToken(key.Kind) + "." + EscapeToken(key.Namespace) + "." + EscapeToken(key.Name)
}

// KeyFromTokens is the inverse of KeyTokens.
func KeyFromTokens(tokens string) (mesh.Key, error) {
	parts := strings.Split(tokens, ".")
	if len(parts) != 4 {
		return mesh.Key{}, fmt.Errorf("%q: want 4 tokens", tokens)
	}
	for i, p := range parts {
		s, err := UnescapeToken(p)
		if err != nil {
			return mesh.Key{}, err
		}
		parts[i] = s
	}
	return mesh.Key{Group: parts[0], Kind: parts[1], Namespace: parts[2], Name: parts[3]}, nil
}
