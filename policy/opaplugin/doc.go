// Package opaplugin runs meshward's Envoy ext_authz server (package
// extauthz) as a plugin of an OPA runtime: a plugins.Factory registered
// under the name meshward_ext_authz, configured in the plugins section of an
// OPA configuration file, the way opa-envoy-plugin's envoy_ext_authz_grpc
// is.
//
// Decisions are made by meshward's own engine (package policy): the
// built-in SMI decision over the mesh model read from a directory of
// manifests (mesh-dir), combined with user Rego. The user Rego is every
// module OPA loads — bundles, the REST API, files given to opa run — read
// from the OPA store whenever OPA's compiler changes, plus the .rego files
// of the mesh directory. OPA's data documents are not visible to the
// engine, which holds the mesh model's data document at data.meshward.
// Decisions are logged through OPA's decision log plugin when the OPA
// configuration enables it, and the plugin reports its state through the
// manager's plugin status (OPA's /health?plugins).
//
// The plugin does not read the mesh directory itself: the program that
// registers the factory passes a MeshSource (meshward's commands pass one
// built on adapters/files and adapters/translate), so that package policy
// stays free of adapters.
package opaplugin
