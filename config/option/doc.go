// Package option is the one way the broadcaster's parts are configured. A part's constructor
// takes its required arguments and then options (func(*options) error) that write into an
// options struct; the part is built only after every option is applied, so their order never
// matters and an injected client is never changed. Each part owns its defaults and checks each
// value as it is applied, wrapping ErrInvalid and naming the setting at fault.
//
// It imports only the standard library, so every package can use it; config maps flags, the
// file and the environment onto these options.
package option
