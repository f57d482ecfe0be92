package config

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// sections names the top-level sections of the file, for the help.
var sections = map[string]string{
	"source":         "Source (one of manifests or a cluster)",
	"leaderElection": "Leader election (cluster mode)",
	"server":         "Endpoints",
	"access":         "Access",
	"events":         "Events",
	"transports":     "Transports",
	"logging":        "Logging",
}

func sectionOf(key string) string { return key[:strings.IndexByte(key, '.')] }

// WriteFlags writes every flag, config's own and the parts', grouped by section, with its
// environment variable and default.
func WriteFlags(w io.Writer, parts Parts) {
	d := defaults(parts)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	section := ""
	fmt.Fprintf(tw, "  --config <file>\tread settings from this YAML file (env BROADCASTER_CONFIG)\n")
	for _, s := range tableOf(d.parts) {
		if s.flag == "" {
			continue
		}
		if sec := sectionOf(s.key); sec != section {
			section = sec
			fmt.Fprintf(tw, "\n%s:\n", sections[sec])
		}
		name := "--" + s.flag
		if s.placeholder != "" {
			name += " <" + s.placeholder + ">"
		}
		help := s.help
		if def := s.field(&d).String(); def != "" && def != "false" && !strings.Contains(help, "(default") {
			help += " (default " + def + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", name, help)
	}
	tw.Flush()
}

// WriteReference writes the table of every setting, config's own and the parts', in Markdown:
// key, flag, environment variables, default and meaning. docs/configuration.md is this output
// (a test keeps them equal).
func WriteReference(w io.Writer, parts Parts) {
	defaults := defaults(parts)
	fmt.Fprintln(w, "| key | flag | environment | default | meaning |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, s := range tableOf(defaults.parts) {
		flagName := ""
		if s.flag != "" {
			flagName = "`--" + s.flag + "`"
		}
		env := "`" + s.env() + "`"
		if s.fallbackEnv != "" {
			env += ", `" + s.fallbackEnv + "`"
		}
		d := s.field(&defaults).String()
		if d != "" {
			d = "`" + d + "`"
		}
		help := s.help
		if s.secret {
			help += "; a secret: never shown"
		}
		fmt.Fprintf(w, "| `%s` | %s | %s | %s | %s |\n", s.key, flagName, env, d, strings.ReplaceAll(help, "|", "\\|"))
	}
}

// WriteEffective writes the configuration as a YAML config file, each value followed by where
// it came from; secrets are shown as "(secret)". Loading the output again gives the same
// configuration, secrets aside.
func (c Config) WriteEffective(w io.Writer) {
	var open []string // the sections the last line is in
	for _, s := range tableOf(c.parts) {
		parts := strings.Split(s.key, ".")
		sections, leaf := parts[:len(parts)-1], parts[len(parts)-1]
		common := 0
		for common < len(open) && common < len(sections) && open[common] == sections[common] {
			common++
		}
		for i := common; i < len(sections); i++ {
			fmt.Fprintf(w, "%s%s:\n", strings.Repeat("  ", i), sections[i])
		}
		open = sections
		v := s.field(&c)
		text := yamlValue(v)
		if s.secret && v.String() != "" {
			text = `"(secret)"`
		}
		fmt.Fprintf(w, "%s%s: %s  # %s\n", strings.Repeat("  ", len(sections)), leaf, text, c.Origin(s.key))
	}
}

// yamlValue is v as a YAML value: lists as flow sequences, strings quoted.
func yamlValue(v value) string {
	switch v := v.(type) {
	case boolValue, intValue, int64Value:
		return v.String()
	case stringsValue:
		quoted := make([]string, len(*v.p))
		for i, item := range *v.p {
			quoted[i] = strconv.Quote(item)
		}
		return "[" + strings.Join(quoted, ", ") + "]"
	}
	return strconv.Quote(redactCredentials(v.String()))
}
