package auth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
)

// Access is what one caller may see.
type Access struct {
	// Subject names the caller in messages and logs.
	Subject string
	// All is set when the caller may see every namespace.
	All bool
	// Namespaces are those the caller may see, when not All.
	Namespaces map[string]bool
}

// Sees reports whether the caller may see the entities of namespace.
func (a Access) Sees(namespace string) bool { return a.All || a.Namespaces[namespace] }

// Tag tells different partial views of one snapshot apart (in ETags); it is empty for All.
func (a Access) Tag() string {
	if a.All {
		return ""
	}
	names := make([]string, 0, len(a.Namespaces))
	for ns, ok := range a.Namespaces {
		if ok {
			names = append(names, ns)
		}
	}
	slices.Sort(names)
	sum := sha256.Sum256([]byte(strings.Join(names, "\x00")))
	return "-" + hex.EncodeToString(sum[:6])
}

// ErrUnauthenticated is an Authorizer's answer to a token it does not accept (401).
var ErrUnauthenticated = errors.New("unauthenticated")

// ErrBusy is an Authorizer's answer when it checks too many new tokens to check this one now
// (429, try again shortly).
var ErrBusy = errors.New("too many new tokens to check now")

// Authorizer checks a bearer token and says what its bearer may see. namespaces lists the
// mesh's current namespaces, the ones worth asking about; it costs a pass over the mesh (once
// per sequence), so call it only when a per-namespace answer is needed. Any error other than
// ErrUnauthenticated means the check itself failed (503).
type Authorizer interface {
	Authorize(ctx context.Context, token string, namespaces func() []string) (Access, error)
}

// StaticTokens accepts a fixed list of tokens, each seeing everything (manifests mode).
func StaticTokens(tokens []string) (Authorizer, error) {
	var st staticTokens
	for i, t := range tokens {
		if strings.TrimSpace(t) == "" {
			return nil, option.Invalid("tokens", "token %d is empty", i+1)
		}
		st = append(st, []byte(t))
	}
	if len(st) == 0 {
		return nil, option.Invalid("tokens", "none (that would leave the endpoints open)")
	}
	return st, nil
}

type staticTokens [][]byte

func (st staticTokens) Authorize(_ context.Context, token string, _ func() []string) (Access, error) {
	match, which := 0, 0
	for i, t := range st { // every token compared, in constant time: no early exit
		eq := subtle.ConstantTimeCompare([]byte(token), t)
		which = subtle.ConstantTimeSelect(eq, i+1, which)
		match |= eq
	}
	if match != 1 {
		return Access{}, ErrUnauthenticated
	}
	return Access{Subject: "static token #" + strconv.Itoa(which), All: true}, nil
}

// ReadTokens reads a tokens file: one token per line; blank lines and # comments are skipped.
// An empty file is an error, since it would leave the endpoints open.
func ReadTokens(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var tokens []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if strings.ContainsAny(t, " \t") {
			return nil, fmt.Errorf("%s:%d: a token cannot contain spaces", path, line)
		}
		tokens = append(tokens, t)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%s: no tokens (an empty file would leave the endpoints open)", path)
	}
	return tokens, nil
}
