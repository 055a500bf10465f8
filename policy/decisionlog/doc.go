// Package decisionlog records meshward's decisions with OPA's decision log
// plugin (github.com/open-policy-agent/opa/v1/plugins/logs): to the console,
// to a remote decision log service, or both, as configured by the
// decision_logs section of an OPA configuration file. Buffering, batching,
// gzip'd uploads, retries, rate limits and mask and drop policies are OPA's;
// this package only turns a policy.Decision into the event OPA logs.
//
// New builds an OPA plugin manager of its own from a configuration (for
// meshward running on its own). FromManager logs through the decision log
// plugin of an existing manager (for meshward running inside OPA, see
// package opaplugin). Either way, an event's decision_id is the Decision's
// ID, its result is the decision (allowed, reason, matched rules and the
// result fields of the policy), its path the decision path and its input the
// request. Logger.ExtAuthz adapts a Logger to extauthz.Options.OnDecision.
package decisionlog
