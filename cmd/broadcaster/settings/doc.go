// Package settings tells config about the broadcaster's parts, which config does not import: each
// transport's own settings (from the factory, transports/destinations), and the defaults and
// checks the sources, the change log, the endpoints, access control and the codec give the
// settings config holds for them. cmd/broadcaster and the tests that load a configuration as
// the broadcaster does pass All to config.Load, config.WriteFlags and config.WriteReference.
//
// The invariant: every rule about a part's setting is the part's own (its Check function or
// options); this package only says which setting each applies to.
package settings
