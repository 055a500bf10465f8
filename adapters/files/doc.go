// Package files is meshward's directory source: it reads a directory of
// Kubernetes manifests into the same snapshot the cluster source builds,
// and watches the directory so that `meshward serve --dir` follows edits.
//
// Load reads the directory once. Every problem (a file that cannot be read,
// a YAML or JSON syntax error, an object that does not decode, a duplicate
// object) is a *ParseError that names the file and line, and any problem
// makes the whole load fail, so that a caller never sees half a directory
// and keeps its last good configuration instead. Objects of kinds meshward
// does not read (Deployments, ConfigMaps) are skipped, not errors.
//
// A Watcher runs Load again after every burst of changes under the
// directory and publishes only the loads that succeed.
package files
