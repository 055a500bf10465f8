package files

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// syntaxErrorLine returns the file line of the first syntax error in data,
// or 0.
func syntaxErrorLine(data []byte) (int, error) {
	for _, doc := range splitDocuments(data) {
		root, err := parseYAML(doc.data)
		if err == nil && root != nil {
			err = repeatedKey(root)
		}
		var le *lineError
		if errors.As(err, &le) {
			return doc.line - 1 + le.line, err
		}
	}
	return 0, nil
}

// TestSyntaxLineEverywhere inserts a broken line at every line of a valid
// multi-document file and checks that the error names that line.
func TestSyntaxLineEverywhere(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("testdata", "bookstore", "mesh.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	for _, bad := range []string{
		"x: a: b\n",  // mapping values are not allowed in this context
		"\tx: 1\n",   // a tab in the indentation
		"x: 'abc\n",  // a quoted scalar that never ends
		"x: *nope\n", // an unknown alias
		"  ]\n",      // a stray bracket
		"@x\n",       // a reserved character
		"x: {a: 1\n", // an unclosed flow mapping
	} {
		t.Run(strings.TrimSpace(bad), func(t *testing.T) {
			t.Parallel()
			checked := 0
			for i := 1; i < len(lines); i++ {
				// Content inserted right next to a separator or an end
				// marker, or at the end, changes what they mean.
				if isSeparator([]byte(lines[i-1])) || i+1 < len(lines) && (isSeparator([]byte(lines[i])) || strings.HasPrefix(lines[i], "...")) {
					continue
				}
				in := strings.Join(lines[:i], "") + bad + strings.Join(lines[i:], "")
				line, err := syntaxErrorLine([]byte(in))
				if line == 0 {
					continue // valid YAML after all (e.g. "x: [" closed later)
				}
				checked++
				if line != i+1 {
					t.Errorf("%q inserted at line %d: reported at line %d: %v", bad, i+1, line, err)
				}
			}
			if checked < len(lines)/2 {
				t.Errorf("only %d of %d insertions gave a syntax error", checked, len(lines))
			}
		})
	}
}
