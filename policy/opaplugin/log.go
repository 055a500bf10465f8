package opaplugin

import (
	"fmt"
	"maps"

	"github.com/go-logr/logr"
	"github.com/open-policy-agent/opa/v1/logging"
)

// opaSink writes a logr.Logger's messages to OPA's logger, so that inside
// an OPA runtime meshward logs where OPA does, in OPA's format: V(0) is
// OPA's info level, any higher verbosity its debug level.
type opaSink struct {
	l      logging.Logger
	name   string
	fields map[string]any
}

func fromOPA(l logging.Logger) logr.Logger {
	if l == nil {
		return logr.Discard()
	}
	return logr.New(&opaSink{l: l})
}

func (s *opaSink) Init(logr.RuntimeInfo) {}

func (s *opaSink) Enabled(level int) bool {
	if level > 0 {
		return s.l.GetLevel() >= logging.Debug
	}
	return s.l.GetLevel() >= logging.Info
}

func (s *opaSink) Info(level int, msg string, kv ...any) {
	l := s.with(kv)
	if level > 0 {
		l.Debug("%s", msg)
		return
	}
	l.Info("%s", msg)
}

func (s *opaSink) Error(err error, msg string, kv ...any) {
	if err != nil {
		kv = append(kv, "err", err.Error())
	}
	s.with(kv).Error("%s", msg)
}

// with returns OPA's logger with the sink's fields and kv.
func (s *opaSink) with(kv []any) logging.Logger {
	if len(s.fields) == 0 && len(kv) == 0 && s.name == "" {
		return s.l
	}
	f := s.merged(kv)
	if s.name != "" {
		f["logger"] = s.name
	}
	return s.l.WithFields(f)
}

func (s *opaSink) merged(kv []any) map[string]any {
	f := make(map[string]any, len(s.fields)+len(kv)/2+1)
	maps.Copy(f, s.fields)
	for i := 0; i+1 < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			k = fmt.Sprint(kv[i])
		}
		f[k] = kv[i+1]
	}
	return f
}

func (s *opaSink) WithValues(kv ...any) logr.LogSink {
	return &opaSink{l: s.l, name: s.name, fields: s.merged(kv)}
}

func (s *opaSink) WithName(name string) logr.LogSink {
	if s.name != "" {
		name = s.name + "/" + name
	}
	return &opaSink{l: s.l, name: name, fields: s.fields}
}
