// Package backstagepush runs the node tests of the Backstage catalog module in
// integrations/backstage: the real catalog backend in-process (SQLite, and PostgreSQL when one
// is reachable) following the real broadcaster binary, on Node.js 22 from the npm registry
// (testdata/node22). It installs the module's npm packages once per package-lock.json into the
// user cache, compiles the TypeScript into a temporary folder and runs node --test there; npm
// missing is a failure, not a skip.
package backstagepush
