package mesh_test

import (
	"strings"
	"testing"

	"github.com/meshward/meshward/mesh"
)

func TestOptionsValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*mesh.Options)
		want string // part of the error; "" for valid
	}{
		"defaults":                 {func(*mesh.Options) {}, ""},
		"trust domain with digits": {func(o *mesh.Options) { o.TrustDomain = "prod-1.example_org" }, ""},
		"empty trust domain":       {func(o *mesh.Options) { o.TrustDomain = "" }, "trust domain must not be empty"},
		"upper-case trust domain":  {func(o *mesh.Options) { o.TrustDomain = "Cluster.Local" }, `trust domain "Cluster.Local" is invalid: SPIFFE allows only lower-case letters`},
		"trust domain with slash":  {func(o *mesh.Options) { o.TrustDomain = "a/b" }, `trust domain "a/b" is invalid`},
		"trust domain with port":   {func(o *mesh.Options) { o.TrustDomain = "example.org:443" }, "is invalid"},
		"long trust domain":        {func(o *mesh.Options) { o.TrustDomain = strings.Repeat("a", 256) }, "longer than 255 characters"},
		"empty mesh name":          {func(o *mesh.Options) { o.MeshName = "" }, "mesh name must not be empty"},
		"principal format":         {func(o *mesh.Options) { o.PrincipalFormat = "uri" }, `principal format "uri" is invalid`},
		"path match":               {func(o *mesh.Options) { o.PathMatch = "regex" }, `path match "regex" is invalid`},
	} {
		t.Run(name, func(t *testing.T) {
			o := mesh.DefaultOptions()
			tc.edit(&o)
			err := o.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
