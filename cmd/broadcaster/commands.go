package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/event-mesh-broadcaster/broadcaster/cmd/broadcaster/printable"
	"github.com/event-mesh-broadcaster/broadcaster/cmd/broadcaster/settings"
	"github.com/event-mesh-broadcaster/broadcaster/config"
	"k8s.io/klog/v2"
)

// command is one of the broadcaster's commands.
type command struct {
	name     string
	summary  string // one line, for the list of commands
	usage    string
	about    string // what it does, a paragraph
	examples []string
	flags    func(io.Writer) // its flags, for the help
	run      func(ctx context.Context, args []string, cio commandIO) error
}

// writeFlags writes the flags of every setting, config's own and the parts'.
func writeFlags(w io.Writer) { config.WriteFlags(w, settings.All()) }

// version is the release, stamped in at build time (-ldflags "-X main.version=v0.1.0");
// without it the module's build information says what it can.
var version string

func commands() []command {
	return []command{
		{
			name:    "run",
			summary: "run the broadcaster (the default: `broadcaster [flags]`)",
			usage:   "broadcaster [flags]",
			about: "Watches a Knative cluster, or a directory of manifests, keeps the event mesh (brokers and\n" +
				"the event types they provide, their consumers, channels and sources) and publishes each\n" +
				"change as a CloudEvent over HTTP, MQTT and NATS. It serves snapshots (GET /v1/getEventMesh,\n" +
				"a drop-in for the Backstage plugin), the recent deltas and a live stream (GET /v1/watch).",
			examples: []string{
				"broadcaster --manifests examples/mesh",
				"broadcaster --kubeconfig ~/.kube/config --sink http://broker-ingress.knative-eventing.svc.cluster.local/team/default",
				"broadcaster --config broadcaster.yaml --log-format json",
			},
			flags: writeFlags,
			run: func(ctx context.Context, args []string, cio commandIO) error {
				cfg, err := config.Load(args, cio.getenv, settings.All())
				if err != nil {
					return err
				}
				level, _ := cfg.Level() // checked by Load
				// client-go logs through klog, a process-wide logger: it writes the
				// broadcaster's format too.
				klog.SetSlogLogger(newLogger(cio.stderr, cfg.LogFormat, level))
				return run(ctx, cfg, cio.stderr, nil)
			},
		},
		{
			name:    "tail",
			summary: "follow a broadcaster, an MQTT broker or NATS and print each change",
			usage:   "broadcaster tail (--watch [NAME=]URL... | --mqtt URL | --nats URL) [--cluster NAME] [flags]",
			about: "Prints each entity change as it happens: from a broadcaster's GET /v1/watch (after its\n" +
				"snapshot), from the retained messages and live topics of an MQTT broker, or from NATS.\n" +
				"Several --watch follow a fleet at once; a shared broker shows every cluster under the\n" +
				"prefix. Lines of a named cluster carry its name; --cluster keeps only some.",
			examples: []string{
				"broadcaster tail --watch http://127.0.0.1:8080",
				"broadcaster tail --watch http://east:8080 --watch http://west:8080",
				"broadcaster tail --mqtt mqtt://127.0.0.1:1883 --output json",
				"broadcaster tail --nats nats://127.0.0.1:4222",
			},
			flags: func(w io.Writer) { writeFlagSet(w, tailFlags(&tailOptions{})) },
			run: func(ctx context.Context, args []string, cio commandIO) error {
				return tail(ctx, args, cio.getenv, cio.stdout, cio.stderr, cio.terminal)
			},
		},
		{
			name:    "snapshot",
			summary: "print the mesh once, as JSON, YAML, a Mermaid graph or DOT",
			usage:   "broadcaster snapshot (--manifests DIR | --kubeconfig FILE | --url [NAME=]URL...) [--whole] [-o json|yaml|mermaid|dot] [flags]",
			about: "Prints the mesh once: from a directory of manifests (read once, no server), from a cluster\n" +
				"(its initial listing), or from a running broadcaster's GET /v1/getEventMesh. JSON is that\n" +
				"endpoint's document; Mermaid and DOT draw sources, brokers and channels → event types →\n" +
				"consumers, by namespace. --whole prints the whole event graph instead (GET /v1/mesh's mesh:\n" +
				"Triggers, Subscriptions, flows, policies and sinks too, each edge drawn with its role).\n" +
				"Several --url print a fleet: JSON {\"clusters\": {name: mesh}}, one picture with each\n" +
				"cluster's namespaces apart; each broadcaster is named by its events.cluster or NAME=.\n" +
				"The token comes from --token-file, --token or $BROADCASTER_TOKEN.",
			examples: []string{
				"broadcaster snapshot --manifests examples/mesh -o mermaid",
				"broadcaster snapshot --manifests examples/mesh --whole -o dot | dot -Tsvg > graph.svg",
				"broadcaster snapshot --url http://127.0.0.1:8080 --token-file token -o dot | dot -Tsvg > mesh.svg",
				"broadcaster snapshot --url http://east:8080 --url http://west:8080 -o mermaid",
			},
			flags: func(w io.Writer) { writeFlagSet(w, snapshotFlags(&snapshotOptions{})) },
			run: func(ctx context.Context, args []string, cio commandIO) error {
				return snapshot(ctx, args, cio.getenv, cio.stdout, cio.stderr)
			},
		},
		{
			name:    "lineage",
			summary: "answer where an event type's events go, who sends to an entity and who may, what is broken",
			usage:   "broadcaster lineage (--manifests DIR | --kubeconfig FILE | --url URL) (--event-type NS/NAME | --target KEY | --broken) [-o text|json|mermaid|dot] [flags]",
			about: "Walks the event graph: from an EventType through Brokers, channels, the Triggers whose filters\n" +
				"can match it, Sequences, Parallels, transforms and replies to every sink, with where failures\n" +
				"go; back from a Broker, channel or sink to everything that sends to it, with the EventPolicies\n" +
				"that say who may; or over the whole graph for dangling references, objects not ready,\n" +
				"EventTypes nothing takes and senders no policy admits. JSON is GET /v1/lineage's answer.",
			examples: []string{
				"broadcaster lineage --manifests examples/mesh --event-type payments/payment-received",
				"broadcaster lineage --url http://127.0.0.1:8080 --target eventing.knative.dev/Broker/payments/default",
				"broadcaster lineage --manifests examples/mesh --broken -o json",
			},
			flags: func(w io.Writer) { writeFlagSet(w, lineageFlags(&lineageOptions{})) },
			run: func(ctx context.Context, args []string, cio commandIO) error {
				return lineageCommand(ctx, args, cio.getenv, cio.stdout, cio.stderr)
			},
		},
		{
			name:    "page",
			summary: "serve one live page over several broadcasters (a merged view of their clusters)",
			usage:   "broadcaster page --url [NAME=]URL --url [NAME=]URL ... [--listen ADDR] [flags]",
			about: "Serves the live page at GET / over several broadcasters, one per cluster: each section is a\n" +
				"namespace of a cluster (\"east · shop\"), every cluster followed on its own, so one broadcaster\n" +
				"down never blanks the others. Each cluster's read endpoints (getEventMesh, mesh, deltas,\n" +
				"watch, lineage) are proxied under /clusters/<name>/v1/. A cluster's name is NAME= or, without\n" +
				"it, the broadcaster's own (--cluster-name, its Mesh-Cluster header), asked at the start.\n" +
				"The token for the broadcasters comes from --token-file or $BROADCASTER_TOKEN.",
			examples: []string{
				"broadcaster page --url http://east.mesh:8080 --url http://west.mesh:8080",
				"broadcaster page --url dev=http://127.0.0.1:8080 --url prod=https://mesh.example --ca-file ca.pem --token-file token",
			},
			flags: func(w io.Writer) { writeFlagSet(w, pageFlags(&pageOptions{})) },
			run: func(ctx context.Context, args []string, cio commandIO) error {
				return pageCommand(ctx, args, cio.getenv, cio.stderr, nil)
			},
		},
		{
			name:    "check-config",
			summary: "print the effective configuration and where each value comes from",
			usage:   "broadcaster check-config [flags]",
			about: "Reads the configuration exactly as the broadcaster would (the same flags, config file and\n" +
				"environment) and prints it as a config file, each value followed by where it came from;\n" +
				"secrets are not shown. Every problem is reported at once, and the exit status is 2 if\n" +
				"there is any. It contacts nothing: a kubeconfig is read, not used.",
			examples: []string{
				"broadcaster check-config --config broadcaster.yaml",
				"BROADCASTER_LOGGING_LEVEL=debug broadcaster check-config --manifests examples/mesh",
			},
			flags: writeFlags,
			run: func(_ context.Context, args []string, cio commandIO) error {
				cfg, err := config.Load(args, cio.getenv, settings.All())
				if err != nil {
					return err
				}
				cfg.WriteEffective(printable.NewWriter(cio.stdout)) // a path or an origin may hold anything
				return nil
			},
		},
		{
			name:     "version",
			summary:  "print the version and build information",
			usage:    "broadcaster version",
			about:    "Prints the release, the commit it was built from and the Go version.",
			examples: []string{"broadcaster version"},
			run: func(_ context.Context, args []string, cio commandIO) error {
				if err := noArguments("version", args); err != nil {
					return err
				}
				writeVersion(cio.stdout)
				return nil
			},
		},
		{
			name:     "help",
			summary:  "show the help of a command",
			usage:    "broadcaster help [command]",
			about:    "Shows what a command does, its flags and examples; without one, the overview.",
			examples: []string{"broadcaster help tail"},
			run: func(_ context.Context, args []string, cio commandIO) error {
				switch len(args) {
				case 0:
					writeOverview(cio.stdout)
					return nil
				case 1:
					cmd, ok := commandNamed(args[0])
					if !ok {
						return fmt.Errorf("%w: help: unknown command %q; the commands are %s", errUsage, args[0], commandNames())
					}
					writeHelp(cio.stdout, cmd)
					return nil
				}
				return fmt.Errorf("%w: help: want one command, got %q", errUsage, strings.Join(args, " "))
			},
		},
	}
}

func commandNamed(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func commandNames() string {
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	return strings.Join(names, ", ")
}

func noArguments(name string, args []string) error {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			return flag.ErrHelp
		}
	}
	if len(args) > 0 {
		return fmt.Errorf("%w: %s takes no arguments, got %q", errUsage, name, strings.Join(args, " "))
	}
	return nil
}

// writeHelp writes a command's help; the run command's is the overview.
func writeHelp(w io.Writer, cmd command) {
	if cmd.name == "run" {
		writeOverview(w)
		return
	}
	fmt.Fprintf(w, "%s: %s\n\nUsage:\n  %s\n\n%s\n", cmd.name, cmd.summary, cmd.usage, cmd.about)
	writeExamples(w, cmd.examples)
	if cmd.flags != nil {
		fmt.Fprintf(w, "\nFlags:\n")
		cmd.flags(w)
	}
	if cmd.name == "check-config" {
		writeEnvironment(w)
	}
}

// writeOverview is `broadcaster --help`: what it is, the commands, examples, the run flags and
// the environment.
func writeOverview(w io.Writer) {
	run, _ := commandNamed("run")
	fmt.Fprintf(w, "broadcaster: push the Knative event mesh to its consumers\n\n%s\n\nUsage:\n  broadcaster [flags]\n  broadcaster <command> [flags]\n\nCommands:\n", run.about)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	writeExamples(w, append(run.examples, "broadcaster check-config --config broadcaster.yaml", "broadcaster tail --watch http://127.0.0.1:8080"))
	fmt.Fprintf(w, "\nFlags:\n")
	writeFlags(w)
	writeEnvironment(w)
	fmt.Fprintf(w, "\nExit status: 0 after a clean stop, 1 on a failure at run time, 2 on a usage or configuration\nerror. Every setting, its key, flag and variable: docs/configuration.md.\n")
}

func writeExamples(w io.Writer, examples []string) {
	if len(examples) == 0 {
		return
	}
	fmt.Fprintf(w, "\nExamples:\n")
	for _, e := range examples {
		fmt.Fprintf(w, "  %s\n", e)
	}
}

func writeEnvironment(w io.Writer) {
	fmt.Fprintf(w, "\nEnvironment:\n"+
		"  Every setting can also come from a variable named BROADCASTER_ and its config-file key in\n"+
		"  upper snake case (transports.mqtt.url: BROADCASTER_TRANSPORTS_MQTT_URL). Flags win over\n"+
		"  the environment, which wins over the config file, which wins over the defaults.\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, v := range [][2]string{
		{"BROADCASTER_CONFIG", "the config file, when --config is not given"},
		{"K_SINK, K_CE_OVERRIDES", "the sink and its CloudEvents extensions, as Knative's SinkBinding injects them"},
		{"K_CA_CERTS", "the sink's CA certificates (PEM), as a SinkBinding injects them"},
		{"K_AUDIENCE, K_OIDC_SERVICE_ACCOUNT", "cluster mode: the sink's OIDC audience and the ServiceAccount its tokens are for"},
		{"KUBECONFIG", "the cluster to watch, when no source is given"},
		{"POD_IP, POD_NAMESPACE", "in a pod: this replica's address, and its namespace (the Lease's, its ServiceAccount's)"},
	} {
		fmt.Fprintf(tw, "  %s\t%s\n", v[0], v[1])
	}
	tw.Flush()
}

// writeFlagSet writes a flag set's flags as the help shows them.
func writeFlagSet(w io.Writer, fs *flag.FlagSet) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		arg := "--" + f.Name
		if name != "" {
			arg += " <" + name + ">"
		}
		if f.DefValue != "" && f.DefValue != "false" {
			usage += " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", arg, usage)
	})
	tw.Flush()
}

// writeVersion writes the release and the build: commit, its time, whether the tree was
// modified, and the Go version.
func writeVersion(w io.Writer) {
	release, commit, when, modified := version, "", "", false
	if info, ok := debug.ReadBuildInfo(); ok {
		if release == "" {
			release = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if release == "" || release == "(devel)" {
		release = "devel"
	}
	fmt.Fprintf(w, "broadcaster %s\n", release)
	if commit != "" {
		if modified {
			commit += " (modified)"
		}
		fmt.Fprintf(w, "  commit  %s\n", commit)
	}
	if when != "" {
		fmt.Fprintf(w, "  time    %s\n", when)
	}
	fmt.Fprintf(w, "  go      %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
