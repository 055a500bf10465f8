// Package policy holds meshward's end-to-end tests of the decision paths:
// the Envoy ext_authz gRPC server, the nginx auth endpoint (behind a real
// nginx with auth_request, and called the way ingress-nginx's auth-url
// calls it) and `meshward check`. Every path decides with the same policy
// engine over the same mesh model, so one table of requests must get the
// same answers from all of them. The package has no code outside its
// tests.
package policy
