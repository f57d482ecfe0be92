// Package codec turns mesh entity changes into mesh-delta CloudEvents and back.
//
// Transports encode with Encoder.Event and sdk-go's bindings (binary or structured mode);
// consumers decode with Decode, which validates everything it reads and never panics. The
// invariant: Decode(Encoder.Event(c)) == c for every change the engine emits, and the event's
// data alone carries everything (some carriers drop attributes).
package codec
