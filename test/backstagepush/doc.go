// Package backstagepush runs the node tests of the Backstage catalog module in
// integrations/backstage: the real catalog backend in-process (SQLite, and PostgreSQL when one
// is reachable) following the real broadcaster binary, on Node.js 22 from the npm registry
// (testdata/node22), against the current Backstage release line (the module's devDependencies)
// and the previous one (testdata/previous, the lowest versions its peer ranges admit); the tests
// that start no catalog also on Node.js 24 (testdata/node24). It installs each set of npm
// packages once per package-lock.json into the user cache, compiles the TypeScript into a
// temporary folder against each and runs node --test there; npm missing is a failure, not a skip.
package backstagepush
