// Package destinations is the factory of the broadcaster's transports: the one list of the
// transports a user can configure, each as its own Settings type. config fills those settings
// from the file, the environment and the flags without knowing them (Settings), and Open turns
// the configured ones into publishers.
//
// Adding a transport is its package, whose Settings has Describe, Check, Destination and Open
// (see Transport), plus one line in the list. The invariant: a transport whose Check accepts
// its settings opens from them, or fails only on what Check cannot know (a server away).
package destinations
