// Package auth decides who may read the mesh from the pull endpoints. An Authorizer turns a
// bearer token into an Access (everything, or some namespaces); Middleware puts it in front
// of the /v1/ routes and hands each request its caller's Access; the endpoints then show only
// what that Access sees. kubeauth asks the cluster itself; StaticTokens serves manifests mode.
//
// The invariant: a request reaches the routes behind Middleware only with an Access, and an
// Access never shows a namespace its Authorizer did not grant.
package auth
