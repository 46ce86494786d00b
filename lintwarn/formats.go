package lintwarn

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Warning is one warning a linter printed.
type Warning struct {
	// File is as the linter printed it, with a leading "./" dropped and an absolute path
	// under the collector's root made relative to it.
	File         string
	Line, Column int // 0 when the linter gives none
	Rule         string
	Message      string
	// Severity is what the linter calls it ("error", "warning"), when it says; "" otherwise.
	Severity string
	// Format is the format that read the line: a format name or "pattern N" (1-based).
	Format string
}

// format reads one linter's lines. A line a tool prints for code it could not check (a
// compile error) is a toolError: not a warning, and it keeps the step's exit a failure.
type format struct {
	name, tool string
	re         *regexp.Regexp
	toolError  func(w Warning, m []string) bool
}

const loc = `^(?P<file>[^\s:][^:]*):(?P<line>\d+):`

// builtin formats, most specific first: a line is read by the first enabled format that
// matches it, so go-vet's bare "file:line:col: message" comes last.
var builtin = []format{
	{
		// eslint -f unix: "/abs/a.js:1:10: 'x' is unused. [Error/no-unused-vars]".
		name: "eslint-unix", tool: "eslint",
		re: regexp.MustCompile(`^(?P<file>[^:]+):(?P<line>\d+):(?P<column>\d+): (?P<message>.*) \[(?P<severity>Error|Warning)(?:/(?P<rule>[^\]]+))?\]$`),
	},
	{
		// eslint -f compact: "/abs/a.js: line 1, col 10, Error - 'x' is unused. (no-unused-vars)".
		name: "eslint-compact", tool: "eslint",
		re: regexp.MustCompile(`^(?P<file>[^:]+): line (?P<line>\d+), col (?P<column>\d+), (?P<severity>Error|Warning) - (?P<message>.*?)(?: \((?P<rule>[^()\s]+)\))?$`),
	},
	{
		// staticcheck: "main.go:21:2: self-assignment of x to x (SA4018)"; a package that
		// does not compile: "./main.go:4:2: undefined: x (compile)".
		name: "staticcheck", tool: "staticcheck",
		re:        regexp.MustCompile(loc + `(?P<column>\d+): (?P<message>.*) \((?P<rule>[A-Z]{1,2}\d{4}|compile)\)$`),
		toolError: func(w Warning, _ []string) bool { return w.Rule == "compile" },
	},
	{
		// golangci-lint's text output: "main.go:6:2: ineffectual assignment to err (ineffassign)",
		// the column optional; the source and caret lines after it match nothing.
		name: "golangci-lint", tool: "golangci-lint",
		re:        regexp.MustCompile(loc + `(?:(?P<column>\d+):)? (?P<message>.*) \((?P<rule>[a-z][a-z0-9_-]*)\)$`),
		toolError: func(w Warning, _ []string) bool { return w.Rule == "typecheck" },
	},
	{
		// go vet: "main.go:17:14: fmt.Printf format %d has arg name of wrong type string";
		// a package that does not compile: "vet: ./main.go:4:2: undefined: x".
		name: "go-vet", tool: "go vet",
		re:        regexp.MustCompile(`^(?P<vet>vet: )?(?P<file>[^\s:#][^:]*):(?P<line>\d+):(?P<column>\d+): (?P<message>.+)$`),
		toolError: func(_ Warning, m []string) bool { return m[1] != "" },
	},
}

// Formats returns the names of the built-in formats.
func Formats() []string {
	names := make([]string, len(builtin))
	for i, f := range builtin {
		names[i] = f.name
	}
	slices.Sort(names)
	return names
}

// groups are the named groups a pattern may have; message is required.
var groups = []string{"file", "line", "column", "rule", "message"}

// CompilePattern compiles a user pattern: an RE2 regex matched against each output line,
// whose named groups (message required; file, line, column, rule optional) make the warning.
func CompilePattern(pattern string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPattern, err)
	}
	names := re.SubexpNames()
	for _, n := range names {
		if n != "" && !slices.Contains(groups, n) {
			return nil, fmt.Errorf("%w: unknown group %q: use %s", ErrBadPattern, n, strings.Join(groups, ", "))
		}
	}
	if !slices.Contains(names, "message") {
		return nil, fmt.Errorf("%w: no (?P<message>...) group: name the part of the line that is the warning's message", ErrBadPattern)
	}
	return re, nil
}

// Parser reads warnings from lines with the chosen formats and patterns.
type Parser struct {
	formats []format
}

// NewParser returns a Parser for the named formats (see Formats) and user patterns (see
// CompilePattern). The built-in formats are tried most specific first, the patterns after
// them in order.
func NewParser(formats, patterns []string) (*Parser, error) {
	p := &Parser{}
	for _, name := range formats {
		if !slices.ContainsFunc(builtin, func(f format) bool { return f.name == name }) {
			return nil, fmt.Errorf("%w %q: use one of %s", ErrUnknownFormat, name, strings.Join(Formats(), ", "))
		}
	}
	for _, f := range builtin {
		if slices.Contains(formats, f.name) {
			p.formats = append(p.formats, f)
		}
	}
	for i, s := range patterns {
		re, err := CompilePattern(s)
		if err != nil {
			return nil, fmt.Errorf("pattern %d: %w", i+1, err)
		}
		name := "pattern " + strconv.Itoa(i+1)
		p.formats = append(p.formats, format{name: name, tool: name, re: re})
	}
	return p, nil
}

// Parse reads one line of output (without its newline). ok says the line is a warning or,
// with toolError, a tool's report that it could not check the code.
func (p *Parser) Parse(line string) (w Warning, toolError, ok bool) {
	for _, f := range p.formats {
		m := f.re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		w = Warning{Format: f.name}
		for i, name := range f.re.SubexpNames() {
			switch v := m[i]; name {
			case "file":
				w.File = v
			case "line":
				w.Line, _ = strconv.Atoi(v)
			case "column":
				w.Column, _ = strconv.Atoi(v)
			case "rule":
				w.Rule = v
			case "message":
				w.Message = strings.TrimSpace(v)
			case "severity":
				w.Severity = strings.ToLower(v)
			}
		}
		if w.Message == "" {
			continue
		}
		return w, f.toolError != nil && f.toolError(w, m), true
	}
	return Warning{}, false, false
}

// tool names the program a format reads, for reports.
func (p *Parser) tool(formatName string) string {
	for _, f := range p.formats {
		if f.name == formatName {
			return f.tool
		}
	}
	return formatName
}
