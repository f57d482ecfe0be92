package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/cmd/broadcaster/printable"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/lineage"
	"github.com/event-mesh-broadcaster/broadcaster/source"
	"github.com/event-mesh-broadcaster/broadcaster/source/manifests"
)

// lineageOptions are the flags of `broadcaster lineage`: where the mesh comes from (as for
// snapshot) and the question.
type lineageOptions struct {
	snapshotOptions
	eventType, target string
	broken            bool
	limit             int
}

func lineageFlags(o *lineageOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("broadcaster lineage", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	o.sourceFlags(fs, "ask a running broadcaster at this base `url` (GET /v1/lineage)")
	fs.StringVar(&o.eventType, "event-type", "", "where do events of this EventType go (`namespace/name`)")
	fs.StringVar(&o.target, "target", "", "who sends to this entity and who may (its `key`, group/Kind/namespace/name)")
	fs.BoolVar(&o.broken, "broken", false, "what is broken: dangling references, objects not ready, unmatched EventTypes, senders no policy admits")
	fs.IntVar(&o.limit, "limit", 0, fmt.Sprintf("at most this many paths or problems (`n`, default %d)", lineage.DefaultLimit))
	fs.StringVar(&o.output, "o", "text", "output `format`: text, json, mermaid or dot")
	fs.StringVar(&o.output, "output", "text", "the same as -o `format`")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up after this `duration`")
	return fs
}

// query is the question the flags ask, checked as GET /v1/lineage checks it.
func (o *lineageOptions) query() (lineage.Query, error) {
	q, err := lineage.ParseQuery(lineage.QueryValues(o.eventType, o.target, o.broken, o.limit))
	if err != nil {
		err = errors.New(strings.NewReplacer("eventType=", "--event-type ", "eventType ", "--event-type ", "target=", "--target ",
			"target:", "--target:", "broken", "--broken", "limit", "--limit").Replace(strings.TrimPrefix(err.Error(), lineage.ErrQuery.Error()+": ")))
	}
	return q, err
}

// lineageCommand answers one lineage question from a manifests directory, a cluster or a
// running broadcaster. Usage errors wrap errUsage.
func lineageCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var o lineageOptions
	fs := lineageFlags(&o)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: lineage: %w", errUsage, err)
	}
	out := o.output
	o.output = "json" // snapshot's checks, then lineage's formats
	if err := o.validate(fs.Args()); err != nil {
		return fmt.Errorf("%w: lineage: %w", errUsage, err)
	}
	if len(o.broadcasters) > 1 {
		return fmt.Errorf("%w: lineage: a question is about one cluster: give one --url", errUsage)
	}
	if out != "text" && out != "json" && out != "mermaid" && out != "dot" {
		return fmt.Errorf("%w: lineage: -o %q: want text, json, mermaid or dot", errUsage, out)
	}
	q, err := o.query()
	if err != nil {
		return fmt.Errorf("%w: lineage: %w", errUsage, err)
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	var ans lineage.Answer
	var src source.Source
	from := ""
	switch {
	case o.manifests != "":
		src, err = manifests.New(o.manifests, manifests.WithLogger(log.With("source", "manifests")))
		if err != nil {
			return fmt.Errorf("%w: lineage: --manifests %s: %w", errUsage, o.manifests, err)
		}
		from = "--manifests " + o.manifests
	case o.kubeconfig != "":
		var host string
		if src, host, err = clusterSource("lineage", o.kubeconfig, log); err != nil {
			return err
		}
		from = "--kubeconfig " + o.kubeconfig + " (" + host + ")"
	default:
		raw, _, err := askBroadcaster(ctx, "lineage", o.snapshotOptions, getenv, mesh.PathLineage, q.Values())
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &ans); err != nil {
			return fmt.Errorf("lineage: --url %s: the answer does not read as a lineage answer: %w", o.url, err)
		}
	}
	if src != nil {
		h, err := loaded(ctx, src, log)
		if err != nil {
			return fmt.Errorf("lineage: %s: %w", from, err)
		}
		if ans, err = h.Lineage(q, nil); err != nil {
			return fmt.Errorf("lineage: %w", err)
		}
	}
	pw := printable.NewWriter(stdout) // names with control characters show them escaped
	switch out {
	case "json":
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		if err := enc.Encode(ans); err != nil {
			return err
		}
		_, err := stdout.Write(printable.JSON(buf.Bytes()))
		return err
	case "mermaid":
		return lineage.WriteMermaid(pw, ans)
	case "dot":
		return lineage.WriteDOT(pw, ans)
	}
	return writeLineageText(stdout, ans)
}

// writeLineageText prints an answer for people: one path (or sender, policy, problem) a line,
// every name escaped for the terminal.
func writeLineageText(w io.Writer, a lineage.Answer) error {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	at := fmt.Sprintf("(mesh %s #%d)", printable.String(a.Epoch), a.Sequence)
	switch {
	case a.Query.EventType != nil:
		line("where events of %s go %s", printable.String(a.Query.EventType.String()), at)
		if len(a.Producers) > 0 {
			line("produced by: %s", printable.String(strings.Join(a.Producers, ", ")))
		}
	case a.Query.Target != nil:
		line("who sends to %s, and who may %s", printable.String(a.Query.Target.String()), at)
		for _, s := range a.Senders {
			extra := ""
			if s.Via != "" {
				extra += " from " + shortKey(s.Via)
			}
			if s.Admitted != "" {
				extra += ", admitted: " + s.Admitted
			}
			line("  sender %s (%s%s)", shortKey(s.Key), printable.String(string(s.Role)), extra)
		}
		if a.Authorization == "default" {
			line("  no EventPolicy applies: the cluster's default-authorization-mode decides")
		}
		for _, p := range a.Policies {
			filter := ""
			if len(p.Filter) > 0 {
				filter = ", filter " + printable.String(string(p.Filter))
			}
			line("  policy %s admits %s%s", shortKey(p.Key), printable.String(strings.Join(p.From, ", ")), filter)
		}
	case a.Query.Broken:
		line("what is broken %s", at)
		for _, p := range a.Broken {
			line("  %-10s %s: %s", p.Problem, shortKey(p.Key), printable.String(p.Detail))
		}
		if len(a.Broken) == 0 {
			line("  nothing")
		}
	}
	for i, p := range a.Paths {
		hops := make([]string, len(p.Hops))
		for j, h := range p.Hops {
			hops[j] = hopText(h)
		}
		line("%d. %s  (%s)", i+1, strings.Join(hops, " → "), printable.String(p.End))
	}
	if a.Truncated {
		line("… more than shown: ask with a higher --limit")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// hopText is one hop: the object, and in brackets how the path got there.
func hopText(h lineage.Hop) string {
	name := shortKey(h.Key)
	switch {
	case h.URI != "":
		name = printable.String(h.URI)
	case h.Key == "":
		name = "(hidden)"
	}
	var notes []string
	switch h.Role {
	case "", mesh.RoleSubscriber, mesh.RoleBroker, mesh.RoleChannel, mesh.RoleSink, lineage.RoleReference:
	default:
		notes = append(notes, printable.String(string(h.Role)))
	}
	if h.Index != nil {
		notes = append(notes, fmt.Sprintf("#%d", *h.Index))
	}
	if h.Match == "maybe" {
		notes = append(notes, "may match")
	}
	if len(h.Filter) > 0 {
		notes = append(notes, "filter "+printable.String(string(h.Filter)))
	}
	if h.Changes {
		notes = append(notes, "event may change")
	}
	if h.DeadLetterSink != "" {
		notes = append(notes, "failures → "+shortKey(h.DeadLetterSink))
	}
	if h.Ready != nil {
		notes = append(notes, "not ready: "+printable.String(h.Ready.Status+" "+h.Ready.Reason))
	}
	if h.Dangling {
		notes = append(notes, "missing")
	}
	if len(notes) > 0 {
		name += " [" + strings.Join(notes, "; ") + "]"
	}
	return name
}

// shortKey is "Kind namespace/name" for an entity key, the escaped string for anything else.
func shortKey(s string) string {
	k, err := mesh.ParseKey(s)
	if err != nil {
		return printable.String(s)
	}
	return printable.String(k.Kind + " " + k.NamespacedName())
}
