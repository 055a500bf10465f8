// Package version holds meshward's version, set at link time.
package version

import "runtime/debug"

// Version is set with -ldflags "-X github.com/meshward/meshward/internal/version.Version=...".
var Version = ""

// String returns the version, falling back to the module version recorded
// in the binary, or "dev".
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
