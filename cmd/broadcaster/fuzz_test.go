package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// FuzzTail feeds tail's printer an entity whose key, description, epoch and cluster (the
// epoch's string again: a broadcaster's own snapshot names it unchecked) are arbitrary strings: the text format shows no control character of the input raw and prints one line per
// entity or change; JSON and YAML documents read back to the same strings. The seed corpus is
// in testdata/fuzz/FuzzTail.
func FuzzTail(f *testing.F) {
	f.Add("ns", "name", "Kind", "a description", "epoch-1")
	f.Add("ns", "evil", "Src\x1b]0;title\a", "x\u009b2J\u009d0;t\u009c\x7f\ufffe\u202e\nforged", "e\r\n")
	f.Fuzz(func(t *testing.T, namespace, name, kind, description, epoch string) {
		key := mesh.Key{Group: "sources.knative.dev", Kind: kind, Namespace: namespace, Name: name}
		before, _ := json.Marshal(map[string]any{"name": name, "description": "before"})
		after, _ := json.Marshal(map[string]any{"name": name, "description": description})
		changes := []mesh.Change{
			{Epoch: epoch, Sequence: 1, Kind: mesh.KindSource, Op: mesh.OpAdded, Key: key, Entity: before, Cluster: epoch},
			{Epoch: epoch, Sequence: 2, Kind: mesh.KindSource, Op: mesh.OpUpdated, Key: key, Entity: after, Cluster: epoch},
		}
		// An API server holds valid UTF-8 only; what JSON makes of other bytes is what is compared.
		var want struct{ Description, Key string }
		_ = json.Unmarshal(after, &want)
		keyJSON, _ := json.Marshal(key.String())
		_ = json.Unmarshal(keyJSON, &want.Key)
		snapshot := mesh.Snapshot{Epoch: epoch, Sequence: 1, Cluster: epoch}
		snapshot.Mesh.Sources = nil
		for _, format := range []string{"text", "json", "yaml"} {
			var out bytes.Buffer
			p := &printer{out: &out, format: format, keep: func(consumer.FleetEntityID) bool { return true },
				now: func() time.Time { return time.Unix(0, 0) }, timestamps: true}
			p.snapshot(snapshot)
			for _, c := range changes {
				p.change(c)
			}
			text := out.String()
			if raw := rawControls(text); len(raw) > 0 || !utf8.ValidString(text) {
				t.Fatalf("-o %s: raw control characters %q (or bytes that are not UTF-8) in:\n%q", format, raw, text)
			}
			switch format {
			case "text":
				if n := strings.Count(text, "\n"); n != 3 {
					t.Fatalf("%d lines for a snapshot header and two changes:\n%s", n, text)
				}
			case "json":
				lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
				var last struct {
					Key, Epoch string
					Entity     struct{ Description string }
				}
				if len(lines) != 3 || json.Unmarshal([]byte(lines[2]), &last) != nil {
					t.Fatalf("not three JSON lines:\n%s", text)
				}
				if last.Entity.Description != want.Description || last.Key != want.Key {
					t.Fatalf("the JSON does not round-trip: %q, %q", last.Key, last.Entity.Description)
				}
			case "yaml":
				dec := yaml.NewDecoder(strings.NewReader(text))
				var docs []map[string]any
				for {
					var doc map[string]any
					if err := dec.Decode(&doc); err != nil {
						break
					}
					docs = append(docs, doc)
				}
				if len(docs) != 3 {
					t.Fatalf("%d YAML documents, want 3:\n%s", len(docs), text)
				}
				entity, _ := docs[2]["entity"].(map[string]any)
				if got, _ := entity["description"].(string); got != want.Description {
					t.Fatalf("the YAML does not round-trip: %q, want %q\n%s", got, want.Description, text)
				}
			}
		}
	})
}
