package files

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// ErrSyntax is wrapped by the error of a ParseError for a document that is
// not well-formed YAML or JSON (including a mapping that repeats a key).
var ErrSyntax = errors.New("syntax error")

// document is one YAML document of a file: its bytes and the 1-based line
// of the file on which those bytes start.
type document struct {
	line int
	data []byte
}

// splitDocuments splits a YAML stream on document separators: lines that
// start with "---" followed by nothing, blanks or a comment. The separator
// lines themselves belong to no document. Documents that hold only blanks
// and comments are kept; parsing finds them empty.
func splitDocuments(data []byte) []document {
	var docs []document
	start, startLine := 0, 1
	for off, line := 0, 1; off < len(data); line++ {
		end := len(data)
		if i := bytes.IndexByte(data[off:], '\n'); i >= 0 {
			end = off + i + 1
		}
		if isSeparator(data[off:end]) {
			docs = append(docs, document{line: startLine, data: data[start:off]})
			start, startLine = end, line+1
		}
		off = end
	}
	return append(docs, document{line: startLine, data: data[start:]})
}

// isSeparator reports whether a line (with its line break) is a document
// separator with no content after it.
func isSeparator(line []byte) bool {
	rest, ok := bytes.CutPrefix(line, []byte("---"))
	if !ok {
		return false
	}
	if len(rest) > 0 && rest[0] != ' ' && rest[0] != '\t' && rest[0] != '\r' && rest[0] != '\n' {
		return false // "----" or "---x" is content, not a separator
	}
	rest = bytes.TrimLeft(rest, " \t\r\n")
	return len(rest) == 0 || rest[0] == '#'
}

// parseYAML parses one document into its root node. It returns a nil node
// for a document that holds nothing (only comments, or null). Errors are
// *lineError values whose line is relative to the document. Repeated keys
// are not checked here: see repeatedKey.
func parseYAML(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, &lineError{line: syntaxLine(data, err), err: fmt.Errorf("%w: %s", ErrSyntax, yamlMessage(err))}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, &lineError{line: syntaxLine(data, err), err: fmt.Errorf("%w: %s", ErrSyntax, yamlMessage(err))}
	default:
		return nil, &lineError{line: next.Line, err: fmt.Errorf("%w: a second document starts here; put the --- separator on a line of its own", ErrSyntax)}
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	return root, nil
}

// parseJSON checks that data is one JSON value and returns its root node.
// Errors are *lineError values. The node is nil when the YAML parser, which
// gives the line numbers, cannot read JSON that encoding/json accepts (line
// numbers then fall back to the first line of the value).
func parseJSON(data []byte) (*yaml.Node, error) {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		line := 1
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			line = lineAt(data, int(syn.Offset)-1)
		}
		return nil, &lineError{line: line, err: fmt.Errorf("%w: %s", ErrSyntax, strings.TrimPrefix(err.Error(), "json: "))}
	}
	root, err := parseYAML(data)
	if err != nil {
		return nil, nil //nolint:nilerr // the JSON is valid; only line numbers are lost
	}
	return root, nil
}

// lineError is an error at a line relative to the start of a document.
type lineError struct {
	line int
	err  error
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }
func (e *lineError) Unwrap() error { return e.err }

// lineAt returns the 1-based line of data holding byte offset off.
func lineAt(data []byte, off int) int {
	off = min(max(off, 0), len(data))
	return 1 + bytes.Count(data[:off], []byte("\n"))
}

// firstContentLine returns the 1-based line of the first byte of data that
// is neither white space nor part of a comment.
func firstContentLine(data []byte) int {
	for off, line := 0, 1; off < len(data); line++ {
		end := len(data)
		if i := bytes.IndexByte(data[off:], '\n'); i >= 0 {
			end = off + i + 1
		}
		if t := bytes.TrimSpace(data[off:end]); len(t) > 0 && t[0] != '#' {
			return line
		}
		off = end
	}
	return 1
}

var yamlLineRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?`)

// yamlMessage returns a YAML parser error without its "yaml: line N: "
// prefix.
func yamlMessage(err error) string {
	return yamlLineRE.ReplaceAllString(err.Error(), "")
}

// maxSyntaxProbes bounds the work syntaxLine does on a very long document.
const maxSyntaxProbes = 2000

// syntaxLine returns the 1-based line of data that the YAML error err is
// about.
//
// The "line N" in the parser's messages is not always that line: scanner
// errors name the line where the token being read starts (counted from 1),
// parser errors the line where the enclosing construct starts (counted
// from 0), or, when that is 0, the offending line (counted from 0); errors
// found while building the tree (an unknown alias) name none. Two cases
// are settled by the message: a token that runs to the end of the input (a
// quoted scalar left open) is reported where it starts, and so is an
// unclosed flow collection. Otherwise, since the parser reads its input as
// a stream, the offending line is the first line L such that the first L
// lines alone already fail with the same message; the search starts at
// the line the message names, which is never after the offending one.
func syntaxLine(data []byte, err error) int {
	msg := yamlMessage(err)
	named := 0
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil && m[1] != "" {
		named, _ = strconv.Atoi(m[1])
	}
	switch {
	case named > 0 && (msg == "found unexpected end of stream" || msg == "found unexpected document indicator"):
		return named
	case named > 0 && strings.HasPrefix(msg, "did not find expected ',' or "):
		return named + 1
	}
	var ends []int // ends[i] is the offset just past line i+1
	for off := 0; off < len(data); {
		end := len(data)
		if i := bytes.IndexByte(data[off:], '\n'); i >= 0 {
			end = off + i + 1
		}
		ends = append(ends, end)
		off = end
	}
	from := max(named, 1)
	for l := from; l <= len(ends) && l < from+maxSyntaxProbes; l++ {
		if e := parseAll(data[:ends[l-1]]); e != nil && yamlMessage(e) == msg {
			return l
		}
	}
	return min(from, max(len(ends), 1))
}

// parseAll parses every document of data and returns the first error.
func parseAll(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// repeatedKey returns a *lineError for the first mapping under n that
// repeats a key. YAML forbids it, and the decoder would silently keep one
// of the values.
func repeatedKey(n *yaml.Node) error {
	switch n.Kind {
	case yaml.MappingNode:
		seen := make(map[string]int, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind == yaml.ScalarNode && k.Value != "<<" {
				if first, dup := seen[k.Value]; dup {
					return &lineError{line: k.Line, err: fmt.Errorf("%w: key %q already defined at line %d", ErrSyntax, k.Value, first)}
				}
				seen[k.Value] = k.Line
			}
			if err := repeatedKey(n.Content[i+1]); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if err := repeatedKey(c); err != nil {
				return err
			}
		}
	}
	return nil
}

// field returns the value of key in mapping n, or nil.
func field(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// scalar returns the value of key in mapping n if it is a scalar.
func scalar(n *yaml.Node, key string) string {
	if v := field(n, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

// fieldErrRE matches the JSON decoding error for a field of the wrong type,
// e.g. "cannot unmarshal string into Go struct field
// TrafficSplitBackend.spec.backends.weight of type int".
var fieldErrRE = regexp.MustCompile(`cannot unmarshal (\w+) into Go struct field [^.\s]+\.(\S+) of type`)

// errorNode returns the node of the field a decoding error is about, or
// nil. When the path goes through lists (spec.backends.weight), it prefers
// the first node whose YAML type is the JSON type the error names.
func errorNode(root *yaml.Node, err error) *yaml.Node {
	m := fieldErrRE.FindStringSubmatch(err.Error())
	if root == nil || m == nil {
		return nil
	}
	var found []*yaml.Node
	var walk func(n *yaml.Node, path []string)
	walk = func(n *yaml.Node, path []string) {
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		if len(path) == 0 {
			found = append(found, n)
			if n.Kind == yaml.SequenceNode {
				found = append(found, n.Content...)
			}
			return
		}
		switch n.Kind {
		case yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			if v := field(n, path[0]); v != nil {
				walk(v, path[1:])
			}
		}
	}
	walk(root, strings.Split(m[2], "."))
	for _, n := range found {
		if jsonTypeOf(n) == m[1] {
			return n
		}
	}
	if len(found) > 0 {
		return found[0]
	}
	return nil
}

// jsonTypeOf names the JSON type a YAML node decodes to, as encoding/json
// names it in its errors.
func jsonTypeOf(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "object"
	case yaml.SequenceNode:
		return "array"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!int", "!!float":
			return "number"
		case "!!bool":
			return "bool"
		case "!!null":
			return "null"
		}
		return "string"
	}
	return ""
}
