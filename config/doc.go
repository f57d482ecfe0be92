// Package config maps the command line, the environment and a YAML file onto the settings of
// the broadcaster's parts. Precedence: a flag given wins over the environment, the environment
// over the file, the file over the defaults.
//
// One table (settings.go) describes every setting: its key in the file (nested by concern:
// source, leaderElection, server, access, events, transports, logging), its flag, its
// BROADCASTER_ variable and the field it sets. The file reader, the flags, the help, the
// effective configuration (check-config) and docs/configuration.md all come from it, so they
// cannot drift apart; Load remembers where each value came from, to say so in every problem.
//
// It owns no defaults and no rules of its own for a part's settings: the defaults come from the
// packages that own them, and Load asks each part whether it accepts its settings (their
// Check functions and options). It reports every problem at once. The invariant: a Config
// returned without error is one every part accepts.
package config
