package lintwarn

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// Limits of a Collector, so that a linter printing without end cannot exhaust the worker.
const (
	// MaxLine is the longest line read; the rest of a longer line is ignored.
	MaxLine = 64 << 10
	// MaxKept is how many distinct warnings are kept; more are counted, not kept.
	MaxKept = 10_000
)

// ansi matches the colour escapes some linters print even into a pipe.
var ansi = regexp.MustCompile(`\x1b\[[0-9;]*m`)

// Collector reads linters' output as it is written, one Stream per output stream, and keeps
// the warnings it finds. A warning printed twice (go vet reports a file once for a package
// and again for its test variant) is counted once. It is safe for concurrent use.
type Collector struct {
	parser *Parser
	root   string

	mu         sync.Mutex
	seen       map[Warning]bool
	warnings   []Warning
	count      int // distinct warnings, kept or not
	lines      int // lines read as warnings, duplicates included
	toolErrors []string
}

// NewCollector returns a Collector that parses with p. root is the directory the steps run
// in: absolute paths under it are reported relative to it.
func NewCollector(p *Parser, root string) *Collector {
	return &Collector{parser: p, root: root, seen: map[Warning]bool{}}
}

// Stream returns a writer for one output stream (stdout or stderr); each keeps its own
// partial line. Flush reads a last line that has no newline.
func (c *Collector) Stream() *Stream { return &Stream{c: c} }

// Count is the number of distinct warnings read so far.
func (c *Collector) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count
}

// Lines is the number of lines read as warnings so far, duplicates included: a step that
// printed any has Lines grow.
func (c *Collector) Lines() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lines
}

// ToolErrors are the lines in which a linter said it could not check the code.
func (c *Collector) ToolErrors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.toolErrors...)
}

// Report is what the Collector read, judged against maxWarnings.
func (c *Collector) Report(maxWarnings int) *Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := &Report{Warnings: append([]Warning(nil), c.warnings...), Count: c.count, MaxWarnings: maxWarnings, tools: map[string]string{}}
	for _, w := range r.Warnings {
		r.tools[w.Format] = c.parser.tool(w.Format)
	}
	return r
}

func (c *Collector) line(s string) {
	s = strings.TrimRight(ansi.ReplaceAllString(s, ""), "\r")
	w, toolError, ok := c.parser.Parse(s)
	if !ok {
		return
	}
	w.File = c.relative(w.File)
	c.mu.Lock()
	defer c.mu.Unlock()
	if toolError {
		if len(c.toolErrors) < MaxKept {
			c.toolErrors = append(c.toolErrors, s)
		}
		return
	}
	c.lines++
	if c.seen[w] {
		return
	}
	c.count++
	if len(c.warnings) < MaxKept {
		c.seen[w] = true
		c.warnings = append(c.warnings, w)
	}
}

// relative drops a leading "./" and makes an absolute path under the root relative to it.
func (c *Collector) relative(file string) string {
	if filepath.IsAbs(file) && c.root != "" {
		if rel, err := filepath.Rel(c.root, file); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return filepath.ToSlash(rel)
		}
	}
	return strings.TrimPrefix(file, "./")
}

// Stream is one output stream of a Collector.
type Stream struct {
	c       *Collector
	partial []byte
}

// Write reads the complete lines in b and keeps the rest for the next Write.
func (s *Stream) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			s.add(b)
			break
		}
		s.add(b[:i])
		s.Flush()
		b = b[i+1:]
	}
	return n, nil
}

func (s *Stream) add(b []byte) {
	if room := MaxLine - len(s.partial); len(b) > room {
		b = b[:room]
	}
	s.partial = append(s.partial, b...)
}

// Flush reads the partial line, if any, as a complete one.
func (s *Stream) Flush() error {
	if len(s.partial) > 0 {
		s.c.line(string(s.partial))
	}
	s.partial = s.partial[:0]
	return nil
}
