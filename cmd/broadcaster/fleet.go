package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"

	"golang.org/x/sync/errgroup"

	"github.com/event-mesh-broadcaster/broadcaster/cmd/broadcaster/printable"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/graph"
	"github.com/event-mesh-broadcaster/broadcaster/transports/resync/page/fleet"
)

// broadcasterURL is one --url of a command that may follow a fleet: a broadcaster's base URL
// and, when given as NAME=URL, the name of its cluster (for a broadcaster without
// events.cluster; one with it must agree).
type broadcasterURL struct {
	cluster, url string
}

func (b broadcasterURL) String() string {
	if b.cluster == "" {
		return b.url
	}
	return b.cluster + "=" + b.url
}

// parseBroadcasterURL reads URL or NAME=URL, as `broadcaster page` does.
func parseBroadcasterURL(v string) (broadcasterURL, error) {
	t, err := fleet.Parse(v)
	if err != nil {
		return broadcasterURL{}, fmt.Errorf("--url: %w", err)
	}
	return broadcasterURL{cluster: t.Name, url: t.URL.String()}, nil
}

// meshesOfBroadcasters reads the mesh of every --url at once, by cluster name. Each
// broadcaster must have a cluster name (its events.cluster, or NAME= of its --url), and no two
// the same, or their meshes could not be told apart.
func meshesOfBroadcasters(ctx context.Context, o snapshotOptions, getenv func(string) string) (map[string][]byte, error) {
	raws := make([][]byte, len(o.broadcasters))
	clusters := make([]string, len(o.broadcasters))
	g, ctx := errgroup.WithContext(ctx)
	for i, b := range o.broadcasters {
		one := o
		one.url, one.cluster = b.url, b.cluster
		g.Go(func() (err error) {
			raws[i], clusters[i], err = meshOfBroadcaster(ctx, one, getenv)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	meshes := map[string][]byte{}
	from := map[string]broadcasterURL{}
	for i, b := range o.broadcasters {
		name := clusters[i]
		if name == "" {
			return nil, fmt.Errorf("%w: snapshot: --url %s: the broadcaster has no cluster name (events.cluster), so its mesh "+
				"cannot be told apart from the others': name it, --url NAME=%s", errUsage, b, b.url)
		}
		if other, twice := from[name]; twice {
			return nil, fmt.Errorf("%w: snapshot: --url %s and --url %s are both cluster %q", errUsage, other, b, name)
		}
		from[name] = b
		meshes[name] = raws[i]
	}
	return meshes, nil
}

// writeFleetSnapshot prints several clusters' meshes (cluster → the EventMesh JSON, with whole
// the Mesh JSON): JSON and YAML as {"clusters": {"<name>": <mesh>, ...}} by name, Mermaid and
// DOT as one picture (graph.Merge) with each cluster's namespaces apart.
func writeFleetSnapshot(w io.Writer, meshes map[string][]byte, format string, whole bool) error {
	names := slices.Sorted(maps.Keys(meshes))
	if format == "json" || format == "yaml" {
		var doc bytes.Buffer // by hand, so the clusters keep their order in YAML too
		doc.WriteString(`{"clusters":{`)
		for i, name := range names {
			if i > 0 {
				doc.WriteByte(',')
			}
			key, _ := json.Marshal(name) // a checked cluster name
			doc.Write(key)
			doc.WriteByte(':')
			doc.Write(meshes[name])
		}
		doc.WriteString(`}}`)
		return writeSnapshot(w, doc.Bytes(), format, whole)
	}
	graphs := map[string]graph.Graph{}
	for _, name := range names {
		var m mesh.Mesh
		if err := json.Unmarshal(meshes[name], &m); err != nil {
			return fmt.Errorf("snapshot: cluster %s: %w", name, err)
		}
		if whole {
			graphs[name] = graph.BuildWhole(m)
		} else {
			graphs[name] = graph.Build(m.EventMesh)
		}
	}
	return writePicture(w, graph.Merge(graphs), format)
}

// writePicture renders g as DOT or Mermaid, names with control characters escaped.
func writePicture(w io.Writer, g graph.Graph, format string) error {
	pw := printable.NewWriter(w)
	if format == "dot" {
		return g.WriteDOT(pw)
	}
	return g.WriteMermaid(pw)
}
