package testenv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"sync"
)

// SyncBuffer is a bytes.Buffer safe for a writer and a reader goroutine:
// the logs of a command a test runs while it reads them.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// LogLine is one line of `meshward --log-format json`, the fields tests
// read.
type LogLine struct {
	Msg     string `json:"msg"`
	Address string `json:"address"`
	Problem string `json:"problem"`
}

// Lines decodes the JSON lines written so far; lines that are not JSON
// (or not yet complete) are skipped.
func (s *SyncBuffer) Lines() []LogLine {
	var out []LogLine
	sc := bufio.NewScanner(strings.NewReader(s.String()))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var l LogLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}
