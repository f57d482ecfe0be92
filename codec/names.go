package codec

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// contextAttributes are the CloudEvents 1.0 context attributes: no extension may take their
// names.
var contextAttributes = []string{"specversion", "id", "source", "type", "datacontenttype", "dataschema", "subject", "time"}

// CheckExtensionName says why name cannot name a CloudEvents extension a user sets (through
// K_CE_OVERRIDES, say), by the CloudEvents 1.0 rules: lower-case letters a-z and digits 0-9
// only, not a context attribute, not "data" (the event's data, which the HTTP binding's
// ce- headers and the JSON format would confuse with it); and not one of the mesh's own
// extensions. nil when it may.
func CheckExtensionName(name string) error {
	switch {
	case name == "":
		return errors.New("an empty name: CloudEvents attribute names are lower-case letters a-z and digits 0-9, at least one")
	case strings.ContainsFunc(name, func(r rune) bool { return (r < 'a' || r > 'z') && (r < '0' || r > '9') }):
		return fmt.Errorf("%q: CloudEvents attribute names are lower-case letters a-z and digits 0-9 only", name)
	case slices.Contains(contextAttributes, name):
		return fmt.Errorf("%q is a CloudEvents context attribute, not an extension", name)
	case name == "data":
		return fmt.Errorf("%q is reserved by CloudEvents for the event's data", name)
	case name == mesh.ExtensionEpoch || name == mesh.ExtensionSequence || name == mesh.ExtensionCluster:
		return fmt.Errorf("%q belongs to the mesh contract", name)
	}
	return nil
}

// CheckSource says why source cannot be the CloudEvents source attribute: the spec wants a
// non-empty URI-reference (RFC 3986), so only its characters and %XX escapes. nil when it can.
func CheckSource(source string) error {
	if source == "" {
		return errors.New("empty: the CloudEvents source is a non-empty URI-reference")
	}
	for i := 0; i < len(source); i++ {
		c := source[i]
		switch {
		case c == '%':
			if i+2 >= len(source) || !isHex(source[i+1]) || !isHex(source[i+2]) {
				return fmt.Errorf("%q: %% at byte %d does not start an escape %%XX (a URI-reference)", source, i)
			}
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("-._~:/?#[]@!$&'()*+,;=", c) >= 0:
		default:
			return fmt.Errorf("%q: the byte %q at %d cannot appear in a URI-reference (escape it as %%%02X)", source, c, i, c)
		}
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
