package opaplugin_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshward/meshward/policy/opaplugin"
)

func TestValidateDefaults(t *testing.T) {
	dir := t.TempDir()
	got, err := factory().Validate(nil, []byte(`{"mesh-dir": "`+dir+`", "path": "/envoy/authz/allow/"}`))
	if err != nil {
		t.Fatal(err)
	}
	c := got.(*opaplugin.Config)
	if c.Addr != ":9191" || c.Path != "envoy/authz/allow" || c.MeshDir != dir || c.DryRun {
		t.Errorf("config = %+v", c)
	}
}

func TestValidateErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	writeFile(t, file, "x")
	const p = "plugins.meshward_ext_authz"
	for name, tc := range map[string]struct{ config, want string }{
		"no config":               {`null`, p + ".mesh-dir: required"},
		"no mesh-dir":             {`{"addr": ":9191"}`, p + ".mesh-dir: required"},
		"missing mesh-dir":        {`{"mesh-dir": "` + dir + `/absent"}`, p + ".mesh-dir: stat " + dir + "/absent: no such file"},
		"mesh-dir a file":         {`{"mesh-dir": "` + file + `"}`, p + ".mesh-dir: " + file + " is not a directory"},
		"unknown option":          {`{"mesh-dir": "` + dir + `", "adr": ":1"}`, p + `: unknown option "adr"; the options are addr, path,`},
		"wrong type":              {`{"mesh-dir": "` + dir + `", "dry-run": "yes"}`, p + ".dry-run: a string, want true or false"},
		"size not a number":       {`{"mesh-dir": "` + dir + `", "grpc-max-recv-msg-size": "4M"}`, p + ".grpc-max-recv-msg-size: a string, want a number of bytes"},
		"negative size":           {`{"mesh-dir": "` + dir + `", "grpc-max-send-msg-size": -1}`, p + ".grpc-max-send-msg-size: -1 is negative"},
		"not an object":           {`[1]`, p + ": the configuration is an array, not an object"},
		"bad addr":                {`{"mesh-dir": "` + dir + `", "addr": "9191"}`, p + `.addr: "9191" is not host:port`},
		"empty unix socket":       {`{"mesh-dir": "` + dir + `", "addr": "unix://"}`, p + `.addr: "unix://" names no socket file`},
		"bad path":                {`{"mesh-dir": "` + dir + `", "path": "envoy//allow"}`, p + `.path: "envoy//allow" is not a decision path`},
		"bad principal":           {`{"mesh-dir": "` + dir + `", "principal-format": "x509"}`, p + `.principal-format: principal format "x509" is invalid`},
		"bad trust domain":        {`{"mesh-dir": "` + dir + `", "trust-domain": "a/b"}`, p + `.trust-domain: trust domain "a/b" is invalid`},
		"bad path match":          {`{"mesh-dir": "` + dir + `", "path-match": "regex"}`, p + `.path-match: path match "regex" is invalid`},
		"trailing garbage":        {`{"mesh-dir": "` + dir + `"} {}`, p + ": more than one value"},
		"syntax error":            {`{"mesh-dir": `, p + ": not valid JSON: unexpected EOF"},
		"mesh-dir not text":       {`{"mesh-dir": 1}`, p + ".mesh-dir: a number, want a string"},
		"decision header []":      {`{"mesh-dir": "` + dir + `", "decision-header": []}`, p + ".decision-header: an array, want a string"},
		"cache size string":       {`{"mesh-dir": "` + dir + `", "decision-cache-size": "big"}`, p + ".decision-cache-size: a string, want a number"},
		"regex cache size string": {`{"mesh-dir": "` + dir + `", "regex-cache-size": "big"}`, p + ".regex-cache-size: a string, want a number"},
		"unknown evaluator":       {`{"mesh-dir": "` + dir + `", "evaluator": "wasm"}`, p + `.evaluator: "wasm" is neither "plan" nor "opa"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := factory().Validate(nil, []byte(tc.config))
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			if !errors.Is(err, opaplugin.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n  %v\nwant ErrConfig containing\n  %s", err, tc.want)
			}
		})
	}
}

func TestValidateWithoutMeshSource(t *testing.T) {
	_, err := opaplugin.NewFactory(opaplugin.FactoryOptions{}).Validate(nil, []byte(`{"mesh-dir": "`+t.TempDir()+`"}`))
	if !errors.Is(err, opaplugin.ErrConfig) || !strings.Contains(err.Error(), "without a mesh source") {
		t.Errorf("error %v", err)
	}
}
