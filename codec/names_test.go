package codec_test

import (
	"strings"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
)

// The CloudEvents naming rules, as the spec states them, for every name a user gives.
func TestCloudEventsNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rule, name string
		want       string // part of the error; "" when valid
	}{
		{"lower-case letters", "cluster", ""},
		{"letters and digits", "region2", ""},
		{"digits alone", "42", ""},
		{"a long name (the 20-character limit is a SHOULD)", "averyveryverylongextensionname", ""},
		{"empty", "", "an empty name"},
		{"upper case", "Upper", "lower-case letters a-z and digits 0-9 only"},
		{"a dash", "my-ext", "lower-case letters a-z and digits 0-9 only"},
		{"an underscore", "data_base64", "lower-case letters a-z and digits 0-9 only"},
		{"a dot", "a.b", "lower-case letters a-z and digits 0-9 only"},
		{"non-ASCII", "ümlaut", "lower-case letters a-z and digits 0-9 only"},
		{"a space", "a b", "lower-case letters a-z and digits 0-9 only"},
		{"data", "data", "reserved by CloudEvents for the event's data"},
		{"specversion", "specversion", "is a CloudEvents context attribute"},
		{"id", "id", "is a CloudEvents context attribute"},
		{"source", "source", "is a CloudEvents context attribute"},
		{"type", "type", "is a CloudEvents context attribute"},
		{"datacontenttype", "datacontenttype", "is a CloudEvents context attribute"},
		{"dataschema", "dataschema", "is a CloudEvents context attribute"},
		{"subject", "subject", "is a CloudEvents context attribute"},
		{"time", "time", "is a CloudEvents context attribute"},
		{"the mesh's epoch", "meshepoch", "belongs to the mesh contract"},
		{"the mesh's sequence", "meshseq", "belongs to the mesh contract"},
		{"the mesh's sequence in another case", "MeshSeq", "lower-case letters a-z and digits 0-9 only"},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			err := codec.CheckExtensionName(tc.name)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("%q: %v, want valid", tc.name, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("%q: %v, want an error saying %q", tc.name, err, tc.want)
			}
		})
	}
}

func TestCloudEventsSources(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		source, want string
	}{
		{"/event-mesh-broadcaster", ""},
		{"https://cluster.example/eventmesh?x=1#f", ""},
		{"urn:event-mesh:prod-eu", ""},
		{"/a%20b", ""},
		{"", "empty"},
		{"my cluster", "cannot appear in a URI-reference"},
		{"/a%2", "does not start an escape"},
		{"/a%zz", "does not start an escape"},
		{"/ü", "cannot appear in a URI-reference"},
		{"/a\"b", "cannot appear in a URI-reference"},
	} {
		err := codec.CheckSource(tc.source)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckSource(%q) = %v, want %q", tc.source, err, tc.want)
		}
	}
}
