package config

import (
	"errors"
	"flag"
	"fmt"
	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with the configuration: where the value came from as the user
// wrote it (a file and line, a flag, an environment variable), the value (never a secret) and
// what is wrong with it.
type Problem struct {
	Origin string // "broadcaster.yaml:12: transports.mqtt.url", "--mqtt", "$BROADCASTER_LOGGING_LEVEL"
	Value  string // as given, quoted; "" when not worth repeating
	Msg    string
}

func (p Problem) String() string {
	if p.Value == "" {
		return p.Origin + ": " + p.Msg
	}
	return p.Origin + " " + p.Value + ": " + p.Msg
}

// Error is every problem of a configuration. It is a usage error (exit status 2).
type Error struct{ Problems []Problem }

func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return e.Problems[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d configuration problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return ErrUsage }

// Origin kinds, as Config.Origin reports them.
const (
	OriginDefault = "default"
)

// loader reads the layers of a configuration into one Config, remembering where each setting
// came from and collecting every problem.
type loader struct {
	cfg      Config
	table    table
	origins  map[string]string // setting key → where its value came from
	problems []Problem
}

func (l *loader) problem(origin, value, format string, args ...any) {
	l.problems = append(l.problems, Problem{Origin: origin, Value: value, Msg: fmt.Sprintf(format, args...)})
}

// shown is how a value appears in messages: quoted, URLs without credentials, secrets never.
func shown(s setting, v string) string {
	if s.secret {
		return "(secret)"
	}
	return fmt.Sprintf("%q", redactCredentials(v))
}

// Load reads args (without the program name), the YAML file named by --config and the
// environment through getenv into config's own settings and the parts' (parts.Settings): flags
// win over the environment, which wins over the file, which wins over the defaults. A flag
// given on the command line wins even to turn a boolean off or clear a string. Every problem,
// config's and those the parts' checks find, is reported at once (an *Error, a usage error).
// --help returns flag.ErrHelp (the command prints the help: see WriteFlags).
func Load(args []string, getenv func(string) string, parts Parts) (Config, error) {
	l := &loader{cfg: defaults(parts), origins: map[string]string{}}
	l.table = tableOf(l.cfg.parts)
	for _, s := range l.table {
		l.origins[s.key] = OriginDefault
	}

	// The command line is read first, into a scratch copy, to find --config, answer --help
	// and report flag syntax; its values are applied last.
	scratch := defaults(parts)
	cfgFile := ""
	fs := l.table.flagSet(&scratch, &cfgFile)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, &Error{Problems: []Problem{l.table.flagProblem(err)}}
	}
	if fs.NArg() > 0 {
		return Config{}, &Error{Problems: []Problem{{Origin: "command line", Msg: fmt.Sprintf("unexpected argument %q (flags start with --; see --help)", fs.Arg(0))}}}
	}
	if cfgFile == "" {
		cfgFile = getenv("BROADCASTER_CONFIG")
	}
	if cfgFile != "" {
		l.readFile(cfgFile)
	}
	l.readEnv(getenv)
	l.readFlags(args)
	l.cfg.PodIP = getenv("POD_IP")
	l.cfg.origins = l.origins
	// Everything is checked whatever else is wrong, so one run reports every problem.
	l.chooseSource(getenv)
	l.validate(parts.Checks)
	if len(l.problems) > 0 {
		slices.SortStableFunc(l.problems, byFileLine)
		return Config{}, &Error{Problems: l.problems}
	}
	return l.cfg, nil
}

// readFile applies the YAML file at path: every key known, every value of the right type.
func (l *loader) readFile(path string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		l.problem("--config", fmt.Sprintf("%q", path), "%v", unwrapPathError(err))
		return
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		l.problem(path, "", "not YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		return
	}
	if len(doc.Content) == 0 {
		return // an empty file sets nothing
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		l.problem(fmt.Sprintf("%s:%d", path, root.Line), "", "want a mapping of settings (source:, transports:, ...), got %s", kindName(root))
		return
	}
	l.walk(path, root, "")
}

// walk applies the mapping node under the key prefix ("" at the top).
func (l *loader) walk(path string, node *yaml.Node, prefix string) {
	seen := map[string]int{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, v := node.Content[i], node.Content[i+1]
		key := k.Value
		if prefix != "" {
			key = prefix + "." + k.Value
		}
		at := fmt.Sprintf("%s:%d: %s", path, k.Line, key)
		if line, dup := seen[k.Value]; dup {
			l.problem(at, "", "given twice (first on line %d)", line)
			continue
		}
		seen[k.Value] = k.Line
		if s, ok := l.table.byKey(key); ok {
			l.setFromNode(s, at, v)
			continue
		}
		if l.table.isSection(key) {
			if v.Kind != yaml.MappingNode {
				if v.Tag == "!!null" {
					continue // an empty section
				}
				l.problem(at, "", "want a mapping (a section of settings), got %s", kindName(v))
				continue
			}
			l.walk(path, v, key)
			continue
		}
		msg := "unknown key"
		if hint := l.table.suggest(key); hint != "" {
			msg += fmt.Sprintf("; did you mean %q?", hint)
		}
		l.problem(at, "", "%s", msg)
	}
}

// setFromNode sets s from a YAML value: a scalar, or a sequence (or comma-separated string)
// for a list.
func (l *loader) setFromNode(s setting, at string, v *yaml.Node) {
	val := s.field(&l.cfg)
	switch {
	case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
		return // "key:" with nothing: the default stays
	case v.Kind == yaml.SequenceNode:
		lv, ok := val.(listValue)
		if !ok {
			l.problem(at, "", "want a single value, got a list")
			return
		}
		lv.Reset()
		for _, item := range v.Content {
			if item.Kind != yaml.ScalarNode {
				l.problem(fmt.Sprintf("%s[%d]", at, slices.Index(v.Content, item)), "", "want a string, got %s", kindName(item))
				continue
			}
			_ = lv.Add(item.Value)
		}
	case v.Kind == yaml.ScalarNode:
		if err := val.Set(v.Value); err != nil {
			l.problem(at, shown(s, v.Value), "%v", err)
			return
		}
	default:
		l.problem(at, "", "want a value, got %s", kindName(v))
		return
	}
	l.origins[s.key] = at
}

// readEnv applies the settings' BROADCASTER_ variables, or else their well-known variables
// (K_SINK, K_CE_OVERRIDES, POD_NAMESPACE). $KUBECONFIG is read by chooseSource, once the
// flags are known: it must not contradict --manifests.
func (l *loader) readEnv(getenv func(string) string) {
	for _, s := range l.table {
		name := s.env()
		raw := getenv(name)
		if raw == "" && s.fallbackEnv != "" && s.fallbackEnv != "KUBECONFIG" {
			name, raw = s.fallbackEnv, getenv(s.fallbackEnv)
		}
		if raw == "" {
			continue
		}
		if err := s.field(&l.cfg).Set(raw); err != nil {
			l.problem("$"+name, shown(s, raw), "%v", err)
			continue
		}
		l.origins[s.key] = "$" + name
	}
}

// readFlags applies the flags given on the command line.
func (l *loader) readFlags(args []string) {
	fs := l.table.flagSet(&l.cfg, new(string))
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		l.problem("command line", "", "%v", err) // the first pass took the same args
	}
	fs.Visit(func(f *flag.Flag) {
		if s, ok := l.table.byFlag(f.Name); ok {
			l.origins[s.key] = "--" + f.Name
		}
	})
}

// flagSet binds the settings' flags to c, plus --config to cfgFile. A list flag given again
// adds to the list given by its first use, which replaces what lower layers set.
func (t table) flagSet(c *Config, cfgFile *string) *flag.FlagSet {
	fs := flag.NewFlagSet("broadcaster", flag.ContinueOnError)
	fs.StringVar(cfgFile, "config", "", "read settings from this YAML file (default $BROADCASTER_CONFIG)")
	for _, s := range t {
		if s.flag == "" {
			continue
		}
		v := s.field(c)
		if lv, ok := v.(listValue); ok {
			v = &firstReplaces{listValue: lv}
		}
		fs.Var(v, s.flag, s.help)
	}
	return fs
}

// firstReplaces makes the first use of a list flag replace the list and later uses add to it.
type firstReplaces struct {
	listValue
	used bool
}

func (f *firstReplaces) Set(s string) error {
	if !f.used {
		f.Reset()
		f.used = true
	}
	return f.Add(s)
}

func (t table) byFlag(name string) (setting, bool) {
	for _, s := range t {
		if s.flag == name {
			return s, true
		}
	}
	return setting{}, false
}

// isSection reports whether key is a prefix of some setting's key.
func (t table) isSection(key string) bool {
	for _, s := range t {
		if strings.HasPrefix(s.key, key+".") {
			return true
		}
	}
	return false
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return fmt.Sprintf("%q", n.Value)
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// redactCredentials hides the user information and query of a URL-looking value.
func redactCredentials(v string) string {
	if strings.Contains(v, "://") && (strings.Contains(v, "@") || strings.Contains(v, "?")) {
		return option.RedactURL(v)
	}
	return v
}

// previousKeys are the keys of the flat config files of earlier versions, so that an old file
// gets told where each setting went.
var previousKeys = map[string]string{
	"manifests": "source.manifests", "kubeconfig": "source.kubeconfig", "namespaces": "source.namespaces",
	"labelSelector": "source.labelSelector", "leaderElect": "leaderElection.enabled",
	"leaderElectionNamespace": "leaderElection.namespace", "leaseDuration": "leaderElection.leaseDuration",
	"renewDeadline": "leaderElection.renewDeadline", "retryPeriod": "leaderElection.retryPeriod",
	"advertiseURL": "leaderElection.advertiseURL", "listen": "server.listen", "tokensFile": "access.tokensFile",
	"tokenAudiences": "access.tokenAudiences", "logLevel": "logging.level", "sink": "transports.http.sink",
	"mqtt": "transports.mqtt.url", "mqttTopicPrefix": "transports.mqtt.topicPrefix", "nats": "transports.nats.url",
	"natsCoreOnly": "transports.nats.coreOnly", "natsSubjectPrefix": "transports.nats.subjectPrefix",
	"natsStream": "transports.nats.stream", "natsKVBucket": "transports.nats.kvBucket",
	"mqttClientID": "transports.mqtt.clientID", "caFile": "transports.caFile", "tlsCertFile": "server.tls.certFile",
	"tlsKeyFile": "server.tls.keyFile", "natsCreds": "transports.nats.credsFile", "eventSource": "events.source",
	"deltaLogBytes": "server.deltaLog.bytes", "deltaLogSize": "server.deltaLog.size",
	"maxWatchers": "server.maxWatchers", "maxWatchersPerIdentity": "server.maxWatchersPerIdentity",
}

// suggest finds the key the user probably meant by an unknown key: an earlier version's name
// for a setting, or a known key or section a small edit away (a typo, another case).
func (t table) suggest(key string) string {
	last := key[strings.LastIndexByte(key, '.')+1:]
	for _, old := range slices.Sorted(maps.Keys(previousKeys)) {
		if strings.EqualFold(old, last) || editDistance(strings.ToLower(old), strings.ToLower(last)) <= 2 && len(last) > 4 {
			return previousKeys[old]
		}
	}
	var known []string
	for _, s := range t {
		known = append(known, s.key)
		for i := range len(s.key) {
			if s.key[i] == '.' {
				known = append(known, s.key[:i])
			}
		}
	}
	best, bestDistance := "", 1+max(2, len(key)/5)
	for _, k := range known {
		if d := editDistance(strings.ToLower(k), strings.ToLower(key)); d < bestDistance {
			best, bestDistance = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// flagProblem turns the flag package's complaint into a problem naming the flag, with a
// suggestion for a misspelt one.
func (t table) flagProblem(err error) Problem {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		p := Problem{Origin: "--" + name, Msg: "unknown flag"}
		best, bestDistance := "", 1+max(2, len(name)/4)
		for _, s := range t {
			if s.flag != "" {
				if d := editDistance(s.flag, name); d < bestDistance {
					best, bestDistance = s.flag, d
				}
			}
		}
		if best != "" {
			p.Msg += fmt.Sprintf("; did you mean --%s?", best)
		}
		return p
	}
	return Problem{Origin: "command line", Msg: msg}
}

// byFileLine puts the config file's problems first, in line order; the others keep theirs.
func byFileLine(a, b Problem) int {
	fa, la := fileLine(a.Origin)
	fb, lb := fileLine(b.Origin)
	switch {
	case fa == "" && fb == "":
		return 0
	case fa == "":
		return 1
	case fb == "":
		return -1
	}
	if c := strings.Compare(fa, fb); c != 0 {
		return c
	}
	return la - lb
}

// fileLine reads "path:line: key" origins.
func fileLine(origin string) (string, int) {
	head, _, ok := strings.Cut(origin, ": ")
	if !ok {
		return "", 0
	}
	i := strings.LastIndexByte(head, ':')
	if i < 0 {
		return "", 0
	}
	n, err := strconv.Atoi(head[i+1:])
	if err != nil {
		return "", 0
	}
	return head[:i], n
}
