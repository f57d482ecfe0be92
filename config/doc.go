// Package config maps the command line, the environment and a YAML file onto the settings of
// the broadcaster's parts. Precedence: a flag given wins over the environment, the environment
// over the file, the file over the defaults.
//
// One table describes every setting: its key in the file (nested by concern: source,
// leaderElection, server, access, events, transports, logging), its flag, its BROADCASTER_
// variable and the field it sets. Config's own settings are in settings.go; each part that
// owns settings (each transport) describes its own Settings type (Part), and Load fills them
// in beside Config's. The file reader, the flags, the help, the effective configuration
// (check-config) and docs/configuration.md all come from that table, so they cannot drift
// apart; Load remembers where each value came from, to say so in every problem.
//
// It imports no part (no source, transport or engine package; a test keeps it so): the caller
// passes Parts (the package parts assembles the broadcaster's), whose settings, defaults and
// checks are the parts' own. Load runs every check and reports every problem at once. The
// invariant: a Config returned without error is one every part accepts.
package config
