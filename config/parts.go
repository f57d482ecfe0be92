package config

import "github.com/event-mesh-broadcaster/broadcaster/config/option"

// Part is the settings one of the broadcaster's parts owns (a transport's), which config fills
// in without importing the part: a pointer to the part's Settings, at the part's defaults.
type Part interface {
	// Describe describes the settings (file keys, flags, help), bound to their fields.
	Describe() []option.Setting
	// Check says whether the part accepts them: each problem is an option.InvalidError whose
	// Setting is the key at fault (option.ForSetting, option.Incomplete), joined.
	Check() error
}

// Parts is what config needs of the broadcaster's parts, which it does not import: their own
// settings, and the defaults and checks of the settings Config holds for them. The package
// parts assembles the broadcaster's.
type Parts struct {
	// Settings returns the parts' own settings at their defaults (each transport's), in the
	// order the help shows them; Load fills them in (Config.Parts). Their keys go after the
	// settings of Config in the same section ("transports").
	Settings func() []Part
	// Defaults sets the parts' defaults of the settings Config holds for them (the change
	// log's bounds, the events' source).
	Defaults func(*Config)
	// Checks are the parts' checks of the settings Config holds for them.
	Checks []Check
}

// Check is a check of one setting of Config.
type Check struct {
	Key string             // the setting at fault: "source.manifests"
	Err func(Config) error // nil when the setting is accepted, or not given
}
