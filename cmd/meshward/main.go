// Command meshward is an SMI-compatible service-mesh adapter and policy
// engine. See `meshward --help`.
package main

import (
	"os"

	"github.com/meshward/meshward/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
