package config

// SettingForTest is a row of the table of settings, as the tests see it.
type SettingForTest struct {
	Key, Flag, Env, Help string
	Secret               bool
}

// TableForTest is every setting of a configuration with parts: config's own and the parts'.
func TableForTest(parts Parts) []SettingForTest {
	var out []SettingForTest
	for _, s := range tableOf(defaults(parts).parts) {
		out = append(out, SettingForTest{Key: s.key, Flag: s.flag, Env: s.env(), Help: s.help, Secret: s.secret})
	}
	return out
}

// WithoutOrigins is c without where its values came from, to compare configurations.
func WithoutOrigins(c Config) Config {
	c.origins = nil
	return c
}
