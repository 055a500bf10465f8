package files

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// fileKind says what meshward does with a file, by its name.
type fileKind int

const (
	ignored  fileKind = iota
	manifest          // *.yaml, *.yml, *.json
	policy            // *.rego
)

func kindOfFile(name string) fileKind {
	switch strings.ToLower(path.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return manifest
	case ".rego":
		return policy
	}
	return ignored
}

// isJSON reports whether a manifest file is read as JSON rather than YAML.
func isJSON(name string) bool { return strings.EqualFold(path.Ext(name), ".json") }

// editorTemp reports whether a file name is one editors use for backups,
// locks and swap files while a file is being edited.
func editorTemp(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".swp", ".swo", ".swx":
		return true
	}
	return strings.HasSuffix(name, "~") || strings.HasPrefix(name, ".#") ||
		(len(name) > 1 && strings.HasPrefix(name, "#") && strings.HasSuffix(name, "#"))
}

// skipped reports whether a directory entry is left out of a load: hidden
// entries (.git, and the ..data directories of a mounted ConfigMap, whose
// files are read through their top-level links) and editor files.
func skipped(name string) bool { return strings.HasPrefix(name, ".") || editorTemp(name) }

// tree is what a walk of the directory found.
type tree struct {
	manifests []string // slash-separated paths relative to the root, sorted
	policies  []string // likewise
	dirs      []string // directories to watch, as root-joined paths, root first
	errs      []error  // *ParseError for entries that could not be read
}

// walk lists the files of root recursively. It follows symbolic links to
// files but not to directories. It fails only when root itself cannot be
// read as a directory; problems below it are collected in tree.errs.
func walk(root string) (*tree, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("manifest directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("manifest directory %s: not a directory", root)
	}
	t := &tree{}
	if err := t.walkDir(root, "."); err != nil {
		return nil, fmt.Errorf("manifest directory: %w", err)
	}
	sort.Strings(t.manifests)
	sort.Strings(t.policies)
	return t, nil
}

// walkDir adds the directory rel (relative to root) and everything below
// it. It returns an error only when rel is the root and cannot be listed.
func (t *tree) walkDir(root, rel string) error {
	dir := filepath.Join(root, filepath.FromSlash(rel))
	entries, err := os.ReadDir(dir)
	if err != nil {
		if rel == "." {
			return err
		}
		// ReadDir returns the entries it could read before the error.
		t.errs = append(t.errs, &ParseError{File: rel + "/", Err: err})
	}
	t.dirs = append(t.dirs, dir)
	for _, e := range entries {
		name := e.Name()
		if skipped(name) {
			continue
		}
		child := path.Join(rel, name)
		mode := e.Type()
		if mode&fs.ModeSymlink != 0 {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				if kindOfFile(name) != ignored {
					t.errs = append(t.errs, &ParseError{File: child, Err: err})
				}
				continue
			}
			if fi.IsDir() {
				continue // not followed: a link may point back up the tree
			}
			mode = fi.Mode().Type()
		}
		switch {
		case mode.IsDir():
			if err := t.walkDir(root, child); err != nil {
				return err
			}
		case !mode.IsRegular():
		case kindOfFile(name) == manifest:
			t.manifests = append(t.manifests, child)
		case kindOfFile(name) == policy:
			t.policies = append(t.policies, child)
		}
	}
	return nil
}
