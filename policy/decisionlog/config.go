package decisionlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/open-policy-agent/opa/v1/util"
)

// ErrConfig is wrapped by every error about a configuration: a file that
// does not load, a section this package does not read, or a decision_logs
// section that enables nothing.
var ErrConfig = errors.New("invalid decision log configuration")

// LoadConfig reads an OPA configuration file (YAML or JSON) and returns it
// as JSON, ready for New. As in OPA's own configuration files, ${NAME} is
// replaced by the environment variable NAME (so that credentials need not
// be written in the file); a variable that is not set is an error.
func LoadConfig(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	expanded, err := expandEnv(string(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConfig, path, err)
	}
	out, err := toJSON([]byte(expanded))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConfig, path, err)
	}
	return out, nil
}

// toJSON parses YAML or JSON and returns the object as JSON.
func toJSON(raw []byte) ([]byte, error) {
	var v any
	if err := util.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("not YAML or JSON: %w", err)
	}
	if v == nil {
		return []byte("{}"), nil
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Errorf("the configuration is a %T, not an object", v)
	}
	return json.Marshal(v)
}

// expandEnv replaces every ${NAME} by the value of the environment
// variable NAME. Nothing else is special: a lone $ stays as it is.
func expandEnv(s string) (string, error) {
	var b strings.Builder
	var missing []string
	for {
		start := strings.Index(s, "${")
		if start < 0 {
			b.WriteString(s)
			break
		}
		end := strings.IndexByte(s[start:], '}')
		if end < 0 {
			return "", fmt.Errorf("%q is not closed with }", s[start:min(len(s), start+20)])
		}
		name := s[start+2 : start+end]
		b.WriteString(s[:start])
		if v, ok := os.LookupEnv(name); ok {
			b.WriteString(v)
		} else {
			missing = append(missing, name)
		}
		s = s[start+end+1:]
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("environment variables not set: %s", strings.Join(missing, ", "))
	}
	return b.String(), nil
}
