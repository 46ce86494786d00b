package strictyaml_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-ci/sluice/internal/strictyaml"
)

var errFormat = errors.New("bad test file")

var format = strictyaml.Format{Name: "test file", Needs: "name and size"}

// decode walks a small format (name: string, size: 1..10, wait: duration, on: bool,
// tags: strings, ratio: 0..1) and returns the values and the error.
func decode(t *testing.T, src string) (map[string]any, error) {
	t.Helper()
	d := &strictyaml.Decoder{File: "f.yaml", Kind: errFormat}
	got := map[string]any{}
	root := d.Root([]byte(src), format)
	if root == nil {
		return got, d.Err()
	}
	d.Fields(root, "", "test file", []strictyaml.Field{
		{Name: "name", Fn: func(path string, _, v *yaml.Node) { got["name"] = d.Str(path, v) }},
		{Name: "size", Fn: func(path string, _, v *yaml.Node) { got["size"], _ = d.Int(path, v, 1, 10) }},
		{Name: "wait", Fn: func(path string, _, v *yaml.Node) { got["wait"], _ = d.Duration(path, v, false) }},
		{Name: "on", Fn: func(path string, _, v *yaml.Node) { got["on"] = d.Bool(path, v) }},
		{Name: "tags", Fn: func(path string, _, v *yaml.Node) { got["tags"] = d.Strs(path, v) }},
		{Name: "mode", Fn: func(path string, _, v *yaml.Node) { got["mode"] = d.OneOf(path, v, "fast", "safe") }},
		{Name: "ratio", Fn: func(path string, _, v *yaml.Node) {
			got["ratio"], _ = d.Float(path, v, func(f float64) string {
				if f > 1 {
					return "at most 1"
				}
				return ""
			})
		}},
	})
	return got, d.Err()
}

func TestDecoderReportsEveryProblemWithItsPosition(t *testing.T) {
	src := "name: [a]\nsize: 11\nwait: soon\non: yes\ntags: {a: b}\nmode: slow\nratio: 2\nsizee: 3\nname: again\n"
	_, err := decode(t, src)
	want := []string{
		`f.yaml:1:7: name: must be a single value, got a list`,
		`f.yaml:2:7: size: 11 is out of range: must be 1..10`,
		`f.yaml:3:7: wait: invalid duration "soon": use a number with a unit, like "90s", "10m" or "1h30m"`,
		`f.yaml:4:5: on: "yes" is not a boolean: use true or false`,
		`f.yaml:5:7: tags: must be a list of strings or one string, got a mapping`,
		`f.yaml:6:7: mode: "slow" is not allowed: use one of fast, safe`,
		`f.yaml:7:8: ratio: 2 is out of range: at most 1`,
		`f.yaml:8:1: sizee: unknown field "sizee" in test file (did you mean "size"?)`,
		`f.yaml:9:1: name: duplicate key "name" (first defined at line 1): remove one`,
	}
	if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	if !errors.Is(err, errFormat) {
		t.Error("the problems do not wrap the format's sentinel")
	}
	if n := len(strictyaml.List(err)); n != len(want) {
		t.Errorf("List returns %d problems, want %d", n, len(want))
	}
}

func TestDecoderReadsWhatIsRight(t *testing.T) {
	got, err := decode(t, "name: web\nsize: 3\nwait: 1m30s\non: true\ntags: solo\nmode: safe\nratio: 0.5\n")
	if err != nil {
		t.Fatal(err)
	}
	if got["name"] != "web" || got["size"] != int64(3) || got["wait"] != 90*time.Second || got["on"] != true ||
		strings.Join(got["tags"].([]string), ",") != "solo" || got["mode"] != "safe" || got["ratio"] != 0.5 {
		t.Fatalf("decoded %v", got)
	}
}

func TestRootRefusesWhatIsNotOneMapping(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"empty", "", "f.yaml:1:1: empty test file: it needs name and size"},
		{"comment only", "# nothing\n", "f.yaml:1:1: empty test file: it needs name and size"},
		{"syntax", "name: [\n", "f.yaml:1: invalid YAML:"},
		{"two documents", "name: a\n---\nname: b\n", "f.yaml:2:1: a test file holds one YAML document"},
		{"a list", "- a\n", "f.yaml:1:1: a test file is a mapping with name and size, got a list"},
		{"an alias bomb", "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
			"f.yaml:1:1: test file too large:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decode(t, tt.src)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("%v, want %q", err, tt.want)
			}
		})
	}
}

func TestExpandSubstitutesAndReportsReferences(t *testing.T) {
	d := &strictyaml.Decoder{File: "f.yaml", Expand: func(s string) (string, []string) {
		if strings.Contains(s, "${NOPE}") {
			return "", []string{"undefined variable ${NOPE}"}
		}
		return strings.ReplaceAll(s, "${HOST}", "db"), nil
	}}
	root := d.Root([]byte("a: ${HOST}:5432\nb: ${NOPE}\n"), format)
	var a string
	d.Fields(root, "", "test file", []strictyaml.Field{
		{Name: "a", Fn: func(path string, _, v *yaml.Node) { a = d.Str(path, v) }},
		{Name: "b", Fn: func(path string, _, v *yaml.Node) { d.Str(path, v) }},
	})
	if a != "db:5432" {
		t.Errorf("a = %q", a)
	}
	if err := d.Err(); err == nil || err.Error() != "f.yaml:2:4: b: undefined variable ${NOPE}" {
		t.Errorf("err = %v", err)
	}
}
