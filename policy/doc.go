// Package policy is meshward's embedded policy engine. It turns the mesh
// model into OPA's data document (Data), compiles the built-in Rego of
// package rego together with user modules, and answers access decisions
// (Engine.Decide, Engine.DecideRequest) with the input document and result
// shapes of opa-envoy-plugin, so that policies written for it run
// unchanged.
//
// The engine keeps one OPA in-memory store holding the data document at
// data.meshward, and prepared queries. Update swaps the data in a write
// transaction; SetUserModules recompiles and re-prepares the queries, and
// modules that do not compile leave the previous policy in force. Each
// decision opens its own read transaction and evaluates the decision path
// (envoy/authz/allow by default) with the built-in policy's matched rules
// in one query; only a decision that needs more explaining (a deny, or an
// allow by user policy) also evaluates the built-in explanation. Every
// decision has an id, a reason and the rules that allowed it. A decision
// that cannot be made (undefined, wrongly typed, an evaluation error or a
// timeout) is a typed error and a deny, unless the mesh option FailOpen is
// set.
//
// Requests are built into the input document directly as AST values
// (Engine.Input), with the path normalised by internal/pathnorm and the
// principals resolved to identities through the model's identity list: a
// principal is never split on ".".
//
// docs/policy.md describes the documents, how user Rego combines with the
// built-in decision, and the result shapes.
package policy
