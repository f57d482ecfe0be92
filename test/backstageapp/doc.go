// Package backstageapp tries the Backstage catalog module of integrations/backstage as a new
// user would: in an app made by @backstage/create-app (pinned, from the npm registry) on
// Node.js 22, with the module installed from its npm pack tarball, the app's own backend
// started on the example mesh served by the real broadcaster binary. It checks the catalog
// API (every entity, a live edit, a delete) and that yarn holds one copy of the catalog's
// extension points. The created app is cached in the user cache, so only the first run is slow.
package backstageapp
