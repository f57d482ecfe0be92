// Package config loads and validates the broadcaster's settings from flags, the environment
// and an optional YAML file. Precedence: flags over the file over defaults (docs/protocol.md).
//
// The invariant: a Config returned without error is complete and valid; every error names the
// flag, file or field at fault.
package config
