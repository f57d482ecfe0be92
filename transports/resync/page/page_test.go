package page_test

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/transports/resync/page"
)

// The document is self-contained: its one script and one style are inline and allowed by
// hash, the policy allows nothing else but requests to its own origin, and nothing in it
// names another origin.
func TestDocumentIsSelfContained(t *testing.T) {
	t.Parallel()
	doc, csp := page.Document()
	html := string(doc)
	for _, part := range []struct{ tag, directive string }{{"script", "script-src"}, {"style", "style-src"}} {
		blocks := regexp.MustCompile(`(?s)<`+part.tag+`>(.*?)</`+part.tag+`>`).FindAllStringSubmatch(html, -1)
		if len(blocks) != 1 {
			t.Fatalf("%d <%s> blocks, want 1", len(blocks), part.tag)
		}
		sum := sha256.Sum256([]byte(blocks[0][1]))
		want := part.directive + " 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if !strings.Contains(csp, want+";") {
			t.Errorf("the policy %q does not allow the inline %s (%s)", csp, part.tag, want)
		}
	}
	for _, d := range []string{"default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("the policy lacks %q: %s", d, csp)
		}
	}
	for _, m := range regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|<script[^>]+src=|<link[^>]+stylesheet|@import`).FindAllString(html, -1) {
		if m != "http://www.w3.org" { // the SVG namespace: a name, never fetched
			t.Errorf("the page refers to something outside itself: %q", m)
		}
	}
	if strings.Contains(html, "/*STYLE*/") || strings.Contains(html, "/*SCRIPT*/") {
		t.Error("a placeholder was left in the document")
	}
}

func TestHandler(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(page.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	doc, csp := page.Document()
	if resp.StatusCode != 200 || string(body) != string(doc) {
		t.Fatalf("GET /: %d, %d bytes", resp.StatusCode, len(body))
	}
	for header, want := range map[string]string{"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": csp,
		"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"} {
		if got := resp.Header.Get(header); got != want {
			t.Errorf("%s: %q, want %q", header, got, want)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	again, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	again.Body.Close()
	if again.StatusCode != http.StatusNotModified {
		t.Errorf("with its ETag: %d, want 304", again.StatusCode)
	}
}

// The list of clusters is a data block: empty for a broadcaster's own page, the names for a
// merged view; the policy is the same for both.
func TestDocumentClusters(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts []page.Option
		want string
	}{
		{name: "a broadcaster's page", want: `[]`},
		{name: "a merged view", opts: []page.Option{page.WithClusters("east", "west")}, want: `["east","west"]`},
	} {
		doc, csp := page.Document(tc.opts...)
		if block := `<script type="application/json" id="clusters">` + tc.want + `</script>`; !strings.Contains(string(doc), block) {
			t.Errorf("%s: no %s in the document", tc.name, block)
		}
		if _, plain := page.Document(); csp != plain {
			t.Errorf("%s: the policy changed: %s", tc.name, csp)
		}
	}
}
