// Package printable makes text that came from users safe to show on a terminal: the commands'
// human outputs (tail, check-config, error messages) pass every string a user controls through
// it, and their JSON outputs through JSON. The invariant: no control character of the input
// (C0, DEL, C1, bidi overrides and isolates, line and paragraph separators, non-characters, bytes
// that are not UTF-8) reaches the output raw; each is shown as a visible escape instead.
package printable
