// Package config maps the command line, an optional YAML file and the environment onto the
// settings of the broadcaster's parts. Precedence: a flag given wins over the file, the file
// over the environment (K_SINK, K_CE_OVERRIDES), that over the defaults.
//
// It owns no defaults and no rules of its own for a part's settings: the defaults come from the
// packages that own them, and Load asks each part whether it accepts its settings (their
// Check functions and options), naming the flag at fault. The invariant: a Config returned
// without error is one every part accepts.
package config
