package mesh

import (
	"fmt"
	"slices"
	"strings"
)

// ObjectRef names an input object.
type ObjectRef struct {
	// Kind is the object's kind, e.g. TrafficTarget.
	Kind string `json:"kind"`
	// Namespace is empty for cluster-scoped objects.
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// String returns "Kind ns/name" (or "Kind name" when cluster-scoped).
func (r ObjectRef) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// Compare orders references by kind, namespace, then name.
func (r ObjectRef) Compare(o ObjectRef) int {
	if c := strings.Compare(r.Kind, o.Kind); c != 0 {
		return c
	}
	if c := strings.Compare(r.Namespace, o.Namespace); c != 0 {
		return c
	}
	return strings.Compare(r.Name, o.Name)
}

// Severity says how serious a finding is.
type Severity string

const (
	// SeverityWarning means the object is used, possibly partly.
	SeverityWarning Severity = "Warning"
	// SeverityError means the object, or part of it, is ignored.
	SeverityError Severity = "Error"
)

// Finding is a problem with an input object: which object, which field,
// what is wrong and what meshward did about it.
type Finding struct {
	Object   ObjectRef `json:"object"`
	Field    string    `json:"field,omitempty"`
	Severity Severity  `json:"severity"`
	// Reason is a CamelCase word, used as a Kubernetes Event reason.
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// String renders the finding for logs and the CLI.
func (f Finding) String() string {
	if f.Field == "" {
		return fmt.Sprintf("%s: %s: %s", f.Object, f.Severity, f.Message)
	}
	return fmt.Sprintf("%s: %s: %s: %s", f.Object, f.Field, f.Severity, f.Message)
}

// Compare orders findings by object, field, then message.
func (f Finding) Compare(o Finding) int {
	if c := f.Object.Compare(o.Object); c != 0 {
		return c
	}
	if c := strings.Compare(f.Field, o.Field); c != 0 {
		return c
	}
	return strings.Compare(f.Message, o.Message)
}

// FindingList collects findings; the zero value is ready to use.
type FindingList []Finding

// Errorf adds an Error finding.
func (l *FindingList) Errorf(obj ObjectRef, field, reason, format string, args ...any) {
	l.add(SeverityError, obj, field, reason, format, args...)
}

// Warnf adds a Warning finding.
func (l *FindingList) Warnf(obj ObjectRef, field, reason, format string, args ...any) {
	l.add(SeverityWarning, obj, field, reason, format, args...)
}

func (l *FindingList) add(sev Severity, obj ObjectRef, field, reason, format string, args ...any) {
	*l = append(*l, Finding{
		Object:   obj,
		Field:    field,
		Severity: sev,
		Reason:   reason,
		Message:  fmt.Sprintf(format, args...),
	})
}

// SortFindings orders findings totally (Finding.Compare, then severity and
// reason) and removes exact duplicates: the order of Model.Findings.
func SortFindings(fs []Finding) []Finding {
	slices.SortFunc(fs, func(a, b Finding) int {
		if c := a.Compare(b); c != 0 {
			return c
		}
		if c := strings.Compare(string(a.Severity), string(b.Severity)); c != 0 {
			return c
		}
		return strings.Compare(a.Reason, b.Reason)
	})
	return slices.Compact(fs)
}
