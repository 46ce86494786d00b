package lintwarn_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-ci/sluice/internal/golden"
	"github.com/sluice-ci/sluice/lintwarn"
)

// collect feeds output to a collector as a step's stdout would, in odd-sized writes, so
// lines split across writes are read whole.
func collect(t *testing.T, p *lintwarn.Parser, root string, output []byte) *lintwarn.Collector {
	t.Helper()
	c := lintwarn.NewCollector(p, root)
	s := c.Stream()
	for len(output) > 0 {
		n := min(7, len(output))
		if _, err := s.Write(output[:n]); err != nil {
			t.Fatal(err)
		}
		output = output[n:]
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	return c
}

// text renders warnings one a line, sorted (go vet prints packages in no fixed order).
func text(ws []lintwarn.Warning) string {
	lines := make([]string, len(ws))
	for i, w := range ws {
		lines[i] = fmt.Sprintf("%s [%s] %q %s %s", lintwarn.Location(w), w.Rule, w.Message, w.Severity, w.Format)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func parser(t *testing.T, formats []string, patterns ...string) *lintwarn.Parser {
	t.Helper()
	p, err := lintwarn.NewParser(formats, patterns)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const eslintRoot = "/var/lib/jenkins/workspace/Releases/eslint Release"

// Real output of each linter (go vet and staticcheck captured from the tools, golangci-lint
// and eslint as their documentation and formatters print it) reads as its warnings; lines
// that are not warnings (package headers, source excerpts, summaries) do not, and a
// linter's report that it could not compile the code is a tool error, not a warning.
func TestFormats(t *testing.T) {
	for _, tc := range []struct {
		format, file, root string
		want               []string
		toolErrors         int
	}{
		{"go-vet", "go-vet.txt", "", []string{
			`main.go:13:13 [] "show passes lock by value: example.com/vetdemo.counter contains sync.Mutex"  go-vet`,
			`main.go:17:14 [] "fmt.Printf format %d has arg name of wrong type string"  go-vet`,
			`main.go:19:19 [] "call of show copies lock value: example.com/vetdemo.counter contains sync.Mutex"  go-vet`,
			`main.go:21:2 [] "self-assignment of x"  go-vet`,
			`sub/sub.go:5:43 [] "fmt.Sprintf format %s reads arg #1, but call has 0 args"  go-vet`,
		}, 1},
		{"staticcheck", "staticcheck.txt", "", []string{
			`main.go:17:13 [SA5009] "Printf format %d has arg #1 of wrong type string"  staticcheck`,
			`main.go:21:2 [SA4018] "self-assignment of x to x"  staticcheck`,
			`main.go:24:6 [U1000] "func unused is unused"  staticcheck`,
			`main.go:26:6 [U1000] "func check is unused"  staticcheck`,
			`main.go:9:2 [U1000] "field mu is unused"  staticcheck`,
			`sub/sub.go:5:42 [SA5009] "Printf format %s reads arg #1, but call has only 0 args"  staticcheck`,
		}, 1},
		{"golangci-lint", "golangci-lint.txt", "", []string{
			"api/handler.go:31:9 [errcheck] \"Error return value of `w.Write` is not checked\"  golangci-lint",
			"api/handler.go:44:2 [staticcheck] \"SA4006: this value of `err` is never used\"  golangci-lint",
			`main.go:12 [gofmt] "File is not ` + "`gofmt`-ed with `-s`" + `"  golangci-lint`,
			`main.go:6:2 [ineffassign] "ineffectual assignment to err"  golangci-lint`,
		}, 1},
		{"eslint-unix", "eslint-unix.txt", eslintRoot, []string{
			`eslint/broken.js:1:1 [] "Parsing error: Unexpected token" error eslint-unix`,
			`eslint/fullOfProblems.js:1:10 [no-unused-vars] "'addOne' is defined but never used." error eslint-unix`,
			`eslint/fullOfProblems.js:3:20 [semi] "Missing semicolon." warning eslint-unix`,
		}, 0},
		{"eslint-compact", "eslint-compact.txt", eslintRoot, []string{
			`eslint/broken.js:1:1 [] "Parsing error: Unexpected token" error eslint-compact`,
			`eslint/fullOfProblems.js:1:10 [no-unused-vars] "'addOne' is defined but never used." error eslint-compact`,
			`eslint/fullOfProblems.js:4:12 [no-else-return] "Unnecessary 'else' after 'return'." warning eslint-compact`,
		}, 0},
	} {
		t.Run(tc.format, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			c := collect(t, parser(t, []string{tc.format}), tc.root, data)
			r := c.Report(0)
			if got, want := text(r.Warnings), strings.Join(tc.want, "\n"); got != want {
				t.Errorf("warnings:\n%s\nwant:\n%s", got, want)
			}
			if r.Count != len(tc.want) || len(c.ToolErrors()) != tc.toolErrors {
				t.Errorf("count %d, tool errors %q; want %d and %d", r.Count, c.ToolErrors(), len(tc.want), tc.toolErrors)
			}
		})
	}
}

// All formats at once: each line is read by the most specific format, so a staticcheck or
// golangci-lint line keeps its rule and is counted once.
func TestFormatsTogether(t *testing.T) {
	var all []byte
	for _, f := range []string{"go-vet.txt", "staticcheck.txt", "golangci-lint.txt", "eslint-unix.txt", "eslint-compact.txt"} {
		data, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, data...)
	}
	r := collect(t, parser(t, lintwarn.Formats()), eslintRoot, all).Report(0)
	byFormat := map[string]int{}
	for _, w := range r.Warnings {
		byFormat[w.Format]++
	}
	want := map[string]int{"go-vet": 5, "staticcheck": 6, "golangci-lint": 4, "eslint-unix": 3, "eslint-compact": 3}
	if fmt.Sprint(byFormat) != fmt.Sprint(want) || r.Count != 21 {
		t.Errorf("%d warnings by format %v, want 21: %v", r.Count, byFormat, want)
	}
}

// The real go vet on a module with known mistakes: its warnings are read whatever its
// version prints around them.
func TestGoVet(t *testing.T) {
	cmd := exec.Command("go", "vet", "./...")
	cmd.Dir = filepath.Join("testdata", "vetmod")
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("go vet: %v, want exit 1 for its warnings:\n%s", err, out)
	}
	r := collect(t, parser(t, []string{"go-vet"}), "", out).Report(4)
	var where []string
	for _, w := range r.Warnings {
		where = append(where, lintwarn.Location(w))
	}
	slices.Sort(where)
	if want := "main.go:13:13 main.go:17:14 main.go:19:19 main.go:21:2 sub/sub.go:5:43"; strings.Join(where, " ") != want {
		t.Errorf("go vet warnings at %v, want %s; output:\n%s", where, want, out)
	}
	if !r.Failed() || r.Summary() != "5 warnings over max_warnings 4" {
		t.Errorf("failed %v, summary %q", r.Failed(), r.Summary())
	}
}

// A user pattern's named groups make the warning; a pattern without a message, with a group
// it does not know, or that does not compile is refused, as is an unknown format.
func TestPatterns(t *testing.T) {
	p := parser(t, nil, `^(?P<file>[\w/.-]+\.sh):(?P<line>\d+):(?P<column>\d+): note: (?P<message>.+) \[(?P<rule>SC\d+)\]$`, `^WARN (?P<message>.+)$`)
	r := collect(t, p, "", []byte("deploy.sh:3:8: note: Double quote to prevent globbing. [SC2086]\nok\nWARN disk almost full")).Report(2)
	if got := text(r.Warnings); got != " [] \"disk almost full\"  pattern 2\ndeploy.sh:3:8 [SC2086] \"Double quote to prevent globbing.\"  pattern 1" {
		t.Errorf("warnings:\n%s", got)
	}
	if r.Failed() || r.Summary() != "2 warnings, within max_warnings 2" {
		t.Errorf("failed %v, summary %q", r.Failed(), r.Summary())
	}

	for _, tc := range []struct {
		formats, patterns []string
		is                error
		msg               string
	}{
		{[]string{"go-vet", "pylint"}, nil, lintwarn.ErrUnknownFormat, `unknown warnings format "pylint": use one of eslint-compact, eslint-unix, go-vet, golangci-lint, staticcheck`},
		{nil, []string{`^(?P<file>\S+): (?P<msg>.+)$`}, lintwarn.ErrBadPattern, `pattern 1: invalid warnings pattern: unknown group "msg": use file, line, column, rule, message`},
		{nil, []string{`^(?P<file>\S+): .+$`}, lintwarn.ErrBadPattern, `pattern 1: invalid warnings pattern: no (?P<message>...) group`},
		{nil, []string{`^WARN (?P<message>.+)$`, `(?P<message>(open`}, lintwarn.ErrBadPattern, "pattern 2: invalid warnings pattern: error parsing regexp: missing closing )"},
	} {
		_, err := lintwarn.NewParser(tc.formats, tc.patterns)
		if !errors.Is(err, tc.is) || !strings.HasPrefix(err.Error(), tc.msg) {
			t.Errorf("NewParser(%q, %q) = %v, want %v starting %q", tc.formats, tc.patterns, err, tc.is, tc.msg)
		}
	}
}

// What a collector does with raw output: a warning printed twice counts once, colours and
// CRLF do not hide a warning, a last line without a newline is read on Flush, each stream
// keeps its own partial line, and an absolute path under the root becomes relative.
func TestCollector(t *testing.T) {
	c := lintwarn.NewCollector(parser(t, []string{"staticcheck"}), "/src/app")
	out, errs := c.Stream(), c.Stream()
	for _, w := range []struct {
		s *lintwarn.Stream
		b string
	}{
		{out, "a.go:1:2: x is unused (U1000)\n\x1b[1ma.go:1:2: x is unused (U1000)\x1b[0m\r\n/src/app/b"},
		{errs, "/elsewhere/c.go:3:4: bad (SA1000)\n"},
		{out, ".go:5:6: y (SA4006)"},
	} {
		if _, err := w.s.Write([]byte(w.b)); err != nil {
			t.Fatal(err)
		}
	}
	if c.Lines() != 3 {
		t.Errorf("%d lines read before Flush, want 3", c.Lines())
	}
	if err := out.Flush(); err != nil {
		t.Fatal(err)
	}
	r := c.Report(0)
	if got := text(r.Warnings); got != "/elsewhere/c.go:3:4 [SA1000] \"bad\"  staticcheck\na.go:1:2 [U1000] \"x is unused\"  staticcheck\nb.go:5:6 [SA4006] \"y\"  staticcheck" {
		t.Errorf("warnings:\n%s", got)
	}
	if r.Count != 3 || c.Lines() != 4 {
		t.Errorf("count %d lines %d, want 3 distinct of 4", r.Count, c.Lines())
	}
}

// The SARIF and JUnit reports, over the limit (every warning an error, a failure) and
// within it (warnings, passing cases with a note), and with no warnings.
func TestReports(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "staticcheck.txt"))
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, "/var/lib/jenkins/workspace/Releases/eslint Release/web/a.js:3:20: Missing semicolon. [Warning/semi]\n"...)
	c := collect(t, parser(t, []string{"staticcheck", "eslint-unix"}), eslintRoot, data)
	for _, tc := range []struct {
		name string
		max  int
		c    *lintwarn.Collector
	}{
		{"over", 0, c},
		{"within", 10, c},
		{"none", 0, lintwarn.NewCollector(parser(t, []string{"go-vet"}), "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.c.Report(tc.max)
			var sarif, junit bytes.Buffer
			if err := lintwarn.WriteSARIF(&sarif, r); err != nil {
				t.Fatal(err)
			}
			if err := lintwarn.WriteJUnit(&junit, r); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", "report-"+tc.name+".sarif"), sarif.Bytes())
			golden.Check(t, filepath.Join("testdata", "report-"+tc.name+".junit.xml"), junit.Bytes())
		})
	}
}

// A linter that prints without end cannot make the collector hold it all: it keeps MaxKept
// distinct warnings (counting the rest) and reads at most MaxLine bytes of a line.
func TestCollectorBoundsWhatALinterPrints(t *testing.T) {
	c := lintwarn.NewCollector(parser(t, []string{"go-vet"}), "")
	s := c.Stream()
	const extra = 500
	for i := range lintwarn.MaxKept + extra {
		if _, err := fmt.Fprintf(s, "a.go:%d:1: warning %d\n", i+1, i); err != nil {
			t.Fatal(err)
		}
	}
	huge := "b.go:1:1: " + strings.Repeat("x", 4<<20)
	for i := 0; i < len(huge); i += 1 << 16 {
		if _, err := s.Write([]byte(huge[i:min(len(huge), i+1<<16)])); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Write([]byte("\n")); err != nil {
		t.Fatal(err)
	}
	r := c.Report(0)
	if len(r.Warnings) != lintwarn.MaxKept || r.Count != lintwarn.MaxKept+extra+1 {
		t.Fatalf("kept %d warnings and counted %d; want %d kept of %d", len(r.Warnings), r.Count, lintwarn.MaxKept, lintwarn.MaxKept+extra+1)
	}
	c2 := lintwarn.NewCollector(parser(t, []string{"go-vet"}), "")
	s2 := c2.Stream()
	if _, err := s2.Write([]byte(huge + "\n")); err != nil {
		t.Fatal(err)
	}
	w := c2.Report(0).Warnings
	if len(w) != 1 || len(w[0].Message) > lintwarn.MaxLine {
		t.Fatalf("a 4 MiB line became %d warnings, the first of %d bytes; want one of at most %d", len(w), len(w[0].Message), lintwarn.MaxLine)
	}
}
