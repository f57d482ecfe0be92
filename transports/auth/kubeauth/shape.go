package kubeauth

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// Token shapes. ServiceAccount and OIDC tokens are JWTs; a cluster may also accept opaque
// tokens (a webhook authenticator's, such as EKS's), so an opaque token is still reviewed,
// but from a budget of its own: a flood of made-up strings cannot use up the reviews that
// callers presenting real ServiceAccount tokens need.
type tokenShape uint8

const (
	shapeOpaque  tokenShape = iota // not a JWT
	shapeJWT                       // a JWT, not expired by its own claims
	shapeExpired                   // a JWT whose exp has passed: refused without a review
)

// shapeOf reads the unverified header and claims of a JWT; the signature is the API
// server's to check.
func shapeOf(token string, now time.Time) tokenShape {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(token) > 16<<10 {
		return shapeOpaque
	}
	var header struct {
		Alg string `json:"alg"`
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
	}
	if !decodeSegment(parts[0], &header) || header.Alg == "" || strings.EqualFold(header.Alg, "none") ||
		!decodeSegment(parts[1], &claims) {
		return shapeOpaque
	}
	if claims.Exp != nil {
		if exp, err := claims.Exp.Float64(); err == nil && time.Unix(int64(exp), 0).Before(now) {
			return shapeExpired
		}
	}
	return shapeJWT
}

func decodeSegment(segment string, into any) bool {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(segment, "="))
	return err == nil && json.Unmarshal(raw, into) == nil
}
