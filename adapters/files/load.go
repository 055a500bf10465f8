package files

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	sigsyaml "sigs.k8s.io/yaml"

	yaml "go.yaml.in/yaml/v3"

	"github.com/meshward/meshward/mesh"
	"github.com/meshward/meshward/snapshot"
)

// ErrDuplicate is wrapped by the error of a ParseError for an object that
// the directory defines twice (same kind, namespace and name).
var ErrDuplicate = errors.New("duplicate object")

// ErrNoName is wrapped by the error of a ParseError for an object without
// metadata.name.
var ErrNoName = errors.New("object has no metadata.name")

// Position is where an object starts in the directory.
type Position struct {
	// File is the path of the file relative to the directory, with "/"
	// between directory names.
	File string
	// Line is the 1-based line of the object's first field (comments and
	// the "---" separator before it are not counted).
	Line int
}

// String returns "file:line".
func (p Position) String() string {
	if p.Line <= 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Policy is a Rego file found in the directory.
type Policy struct {
	// Path is relative to the directory, with "/" between directory names.
	Path string
	// Source is the file's content.
	Source []byte
}

// Skipped is an object that was read but is not one meshward uses, such
// as a Deployment or a ConfigMap next to the mesh objects.
type Skipped struct {
	Position   Position
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
}

// Result is the content of a directory, loaded without error.
type Result struct {
	// Snapshot holds every object meshward reads, in the order of the
	// files (sorted by path) and of the documents in each file, and the
	// findings the decoder reported about them.
	Snapshot *snapshot.Snapshot
	// Positions says where each object of Snapshot starts.
	Positions map[mesh.ObjectRef]Position
	// Policies are the *.rego files, sorted by Path, for the policy engine.
	Policies []Policy
	// Skipped are the objects of kinds meshward does not read, in order.
	Skipped []Skipped
	// Files is the number of manifest files read.
	Files int
	// Digest is "sha256:" and the hex SHA-256 of the names and contents of
	// every file read (manifests and policies): equal digests mean equal
	// input.
	Digest string
}

// ParseError is a file, or a document in it, that could not be read.
type ParseError struct {
	// File is relative to the directory, with "/" between directory names
	// (a directory that could not be listed ends with "/").
	File string
	// Line is the 1-based line of the offending line when it is known,
	// else that of the document's first field; 0 when the whole file is
	// concerned (e.g. it could not be read).
	Line int
	Err  error
}

// Error returns "file:line: message".
func (e *ParseError) Error() string {
	return Position{File: e.File, Line: e.Line}.String() + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *ParseError) Unwrap() error { return e.Err }

// ParseErrors returns the *ParseError values an error from Load is made of.
func ParseErrors(err error) []*ParseError {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		var out []*ParseError
		for _, e := range joined.Unwrap() {
			out = append(out, ParseErrors(e)...)
		}
		return out
	}
	var pe *ParseError
	if errors.As(err, &pe) {
		return []*ParseError{pe}
	}
	return nil
}

// Load reads every manifest (*.yaml, *.yml, *.json) under dir, recursively
// and in sorted order, into a snapshot, and collects the *.rego files.
// Hidden files and directories (.git) and editor backup, lock and swap
// files are left out; symbolic links to files are followed, links to
// directories are not. A nil dec means snapshot.NewDecoder().
//
// A YAML file may hold several documents separated by "---" lines; empty
// documents are skipped. A JSON file holds one object. A List (kind: List,
// or a list kind the decoder knows, such as ServiceList) stands for its
// items. Objects of kinds meshward does not read are listed in
// Result.Skipped, not reported as errors.
//
// If any file cannot be read, or holds a document that is not valid YAML
// or JSON, an object that does not decode, an object without a name, or
// the second definition of an object, Load returns a nil Result and an
// error joining one *ParseError per problem (see ParseErrors). A caller
// keeps its last good Result then. An error that is not a *ParseError
// means dir itself could not be read.
func Load(dir string, dec *snapshot.Decoder) (*Result, error) {
	res, _, err := load(dir, dec)
	return res, err
}

// load is Load that also returns the directories it found (nil if dir could
// not be read), for the watcher.
func load(dir string, dec *snapshot.Decoder) (*Result, []string, error) {
	if dec == nil {
		dec = snapshot.NewDecoder()
	}
	t, err := walk(dir)
	if err != nil {
		return nil, nil, err
	}
	l := &loader{
		dec:  dec,
		errs: t.errs,
		hash: sha256.New(),
		res: &Result{
			Snapshot:  &snapshot.Snapshot{},
			Positions: make(map[mesh.ObjectRef]Position),
		},
	}
	for _, rel := range t.manifests {
		data, err := l.read(dir, rel)
		if err != nil {
			continue
		}
		l.res.Files++
		l.file(rel, data)
	}
	for _, rel := range t.policies {
		if data, err := l.read(dir, rel); err == nil {
			l.res.Policies = append(l.res.Policies, Policy{Path: rel, Source: data})
		}
	}
	if len(l.errs) > 0 {
		return nil, t.dirs, errors.Join(l.errs...)
	}
	l.res.Digest = "sha256:" + hex.EncodeToString(l.hash.Sum(nil))
	return l.res, t.dirs, nil
}

// loader holds the state of one Load.
type loader struct {
	dec  *snapshot.Decoder
	res  *Result
	errs []error
	hash hash.Hash
}

func (l *loader) fail(file string, line int, err error) {
	l.errs = append(l.errs, &ParseError{File: file, Line: line, Err: err})
}

// read reads a file and adds it to the digest.
func (l *loader) read(dir, rel string) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		l.fail(rel, 0, err)
		return nil, err
	}
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(data)))
	l.hash.Write([]byte(rel))
	l.hash.Write([]byte{0})
	l.hash.Write(n[:])
	l.hash.Write(data)
	return data, nil
}

// file reads every document of one manifest file.
func (l *loader) file(rel string, data []byte) {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	if isJSON(rel) {
		root, err := parseJSON(data)
		l.document(rel, document{line: 1, data: data}, root, err)
		return
	}
	for _, doc := range splitDocuments(data) {
		root, err := parseYAML(doc.data)
		l.document(rel, doc, root, err)
	}
}

// document reads one parsed document: an object or a list of objects.
// root is nil for an empty document, or for JSON the YAML parser could not
// give lines for.
func (l *loader) document(rel string, doc document, root *yaml.Node, err error) {
	offset := doc.line - 1 // added to a line of the document to give a line of the file
	if err == nil && root != nil {
		err = repeatedKey(root)
	}
	if err != nil {
		var le *lineError
		if errors.As(err, &le) {
			l.fail(rel, offset+le.line, le.err)
		} else {
			l.fail(rel, offset+firstContentLine(doc.data), err)
		}
		return
	}
	if root == nil && !isJSON(rel) {
		return // an empty document
	}
	line := offset + firstContentLine(doc.data)
	if root != nil {
		line = offset + root.Line
		if root.Kind != yaml.MappingNode {
			l.fail(rel, line, fmt.Errorf("a manifest must be a mapping (an object), not %s", describeNode(root)))
			return
		}
	}
	src := source{file: rel, offset: offset}
	if l.list(src, doc.data, root, line) {
		return
	}
	l.object(src, doc.data, root, line)
}

// source says where the nodes being read come from.
type source struct {
	file   string
	offset int // added to a node's line to give a line of the file
}

func (s source) line(n *yaml.Node, fallback int) int {
	if n == nil || n.Line == 0 {
		return fallback
	}
	return s.offset + n.Line
}

// typeInfo is the part of an object needed to recognize it before
// decoding it.
type typeInfo struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// list reads the items of a List document and reports whether data was
// one. Besides kind List, a list kind that the decoder knows (ServiceList)
// is read too; its items may then omit apiVersion and kind.
func (l *loader) list(src source, data []byte, root *yaml.Node, line int) bool {
	var head typeInfo
	if root != nil {
		head.APIVersion, head.Kind = scalar(root, "apiVersion"), scalar(root, "kind")
	} else if err := sigsyaml.Unmarshal(data, &head); err != nil {
		return false // not ours to report: the decoder will
	}
	if !strings.HasSuffix(head.Kind, "List") {
		return false
	}
	gv, err := schema.ParseGroupVersion(head.APIVersion)
	if err != nil {
		return false
	}
	typed := head.Kind != "List"
	if typed && !l.dec.Scheme().Recognizes(gv.WithKind(head.Kind)) {
		return false // a list of unknown objects is skipped as one object
	}
	js, err := sigsyaml.YAMLToJSON(data)
	if err != nil {
		return false
	}
	var body struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(js, &body); err != nil {
		l.fail(src.file, src.line(field(root, "items"), line), fmt.Errorf("%s items: %w", head.Kind, err))
		return true
	}
	var nodes []*yaml.Node
	if items := field(root, "items"); items != nil && items.Kind == yaml.SequenceNode && len(items.Content) == len(body.Items) {
		nodes = items.Content
	}
	for i, item := range body.Items {
		var node *yaml.Node
		if nodes != nil {
			node = nodes[i]
		}
		if typed {
			item = defaultTypeMeta(item, head.APIVersion, strings.TrimSuffix(head.Kind, "List"))
		}
		l.object(src, item, node, src.line(node, line))
	}
	return true
}

// defaultTypeMeta sets apiVersion and kind of an item of a typed list
// when the item omits them.
func defaultTypeMeta(item json.RawMessage, apiVersion, kind string) json.RawMessage {
	var m map[string]any
	if json.Unmarshal(item, &m) != nil || m == nil {
		return item
	}
	if _, ok := m["apiVersion"]; !ok {
		m["apiVersion"] = apiVersion
	}
	if _, ok := m["kind"]; !ok {
		m["kind"] = kind
	}
	out, err := json.Marshal(m)
	if err != nil {
		return item
	}
	return out
}

// object decodes one object and adds it to the snapshot. node is the
// object's YAML node (nil if unknown), line the line it starts on.
func (l *loader) object(src source, data []byte, node *yaml.Node, line int) {
	pos := Position{File: src.file, Line: line}
	obj, findings, err := l.dec.Decode(data)
	if errors.Is(err, snapshot.ErrUnknownKind) {
		l.skip(pos, data)
		return
	}
	if err != nil {
		l.fail(src.file, src.line(errorNode(node, err), line), err)
		return
	}
	gvks, _, err := l.dec.Scheme().ObjectKinds(obj)
	m, isObject := obj.(metav1.Object)
	if err != nil || len(gvks) == 0 || !isObject {
		l.skip(pos, data)
		return
	}
	ref := mesh.ObjectRef{Kind: gvks[0].Kind, Namespace: m.GetNamespace(), Name: m.GetName()}
	if ref.Name == "" {
		l.fail(src.file, line, fmt.Errorf("%s: %w", ref.Kind, ErrNoName))
		return
	}
	if first, dup := l.res.Positions[ref]; dup {
		l.fail(src.file, line, fmt.Errorf("%w: %s is already defined at %s", ErrDuplicate, ref, first))
		return
	}
	if err := l.res.Snapshot.Add(obj); err != nil {
		// The decoder's scheme knows more kinds than the snapshot holds
		// (all of core/v1, such as ConfigMap).
		l.skip(pos, data)
		return
	}
	l.res.Positions[ref] = pos
	l.res.Snapshot.Findings = append(l.res.Snapshot.Findings, findings...)
}

// skip records an object of a kind meshward does not read.
func (l *loader) skip(pos Position, data []byte) {
	var ti typeInfo
	_ = sigsyaml.Unmarshal(data, &ti) // best effort: the names are for logs
	l.res.Skipped = append(l.res.Skipped, Skipped{
		Position:   pos,
		APIVersion: ti.APIVersion,
		Kind:       ti.Kind,
		Namespace:  ti.Metadata.Namespace,
		Name:       ti.Metadata.Name,
	})
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the scalar %q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document of another kind"
}
