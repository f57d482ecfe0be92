// Package option is the one way the broadcaster's parts are configured. A part's constructor
// takes its required arguments and then options (func(*options) error) that write into an
// options struct; the part is built only after every option is applied, so their order never
// matters and an injected client is never changed. Each part owns its defaults and checks each
// value as it is applied, wrapping ErrInvalid and naming the setting at fault.
//
// A part that users configure also owns a Settings type: its fields as users set them, with
// their defaults, described by Setting (key, flag, help) and checked by the part with errors
// that name the key (ForSetting, Incomplete). config fills those fields from flags, the file
// and the environment without importing the part.
//
// It imports only the standard library, so every package can use it.
package option
