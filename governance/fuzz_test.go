package governance

import (
	"path"
	"testing"
	"unicode/utf8"
)

// FuzzScanFile: no input makes the engine panic, and every finding points inside the file.
func FuzzScanFile(f *testing.F) {
	for _, c := range cases {
		f.Add(path.Ext(c.file), withFakes(c.content))
	}
	f.Add(".js", "if (a) { `${ { ` } } /[/ ' \" \\")
	f.Add(".py", "if a:\n\t\\\n'''\n")
	f.Add(".sql", "DO $$ $a$ ' E'\\ \" [ DROP TABLE")
	f.Add(".yaml", "kind: Secret\ndata:\n  a: ====\n---\nkind: Secret\ndata:\n")
	e, err := New(Config{})
	if err != nil {
		f.Fatal(err)
	}
	exts := []string{".go", ".ts", ".py", ".sql", ".yaml", ".rs", ".cs", ".php", ".md", ".env", ".sh", ".txt"}
	f.Fuzz(func(t *testing.T, ext, content string) {
		for _, x := range exts {
			if x != ext && ext != "" {
				continue
			}
			lines := 1
			for _, c := range []byte(content) {
				if c == '\n' {
					lines++
				}
			}
			for _, fd := range e.ScanFile("f"+x, []byte(content)) {
				if fd.Line < 1 || fd.Line > lines || fd.Column < 1 || fd.EndLine < fd.Line || !utf8.ValidString(fd.Message) {
					t.Errorf("%s: finding out of the file: %+v", x, fd)
				}
			}
		}
	})
}
