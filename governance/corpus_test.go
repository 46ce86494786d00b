package governance

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// label is an expected finding of the corpus: rule at file:line, and its context when the
// label names one.
type label struct {
	file    string
	line    int
	rule    string
	context Context
}

func (l label) String() string { return fmt.Sprintf("%s:%d %s", l.file, l.line, l.rule) }

// wantMarker is a label in a corpus file: "want RULE" for a finding on its line, "want+1
// RULE" for one on the next; RULE/context also names the finding's context.
var wantMarker = regexp.MustCompile(`\bwant(\+1)? ([A-Z]+-[0-9]+)(?:/([a-z]+))?`)

// corpusLabels reads the labels of the corpus at root.
func corpusLabels(t *testing.T, root string) []label {
	t.Helper()
	var out []label
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for n := 1; sc.Scan(); n++ {
			for _, m := range wantMarker.FindAllStringSubmatch(sc.Text(), -1) {
				l := label{file: filepath.ToSlash(rel), line: n, rule: m[2], context: Context(m[3])}
				if m[1] != "" {
					l.line++
				}
				out = append(out, l)
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Precision and recall of every rule on testdata/corpus, a labelled corpus of files in the
// shapes of the real repositories the rules were measured on (traps included: vendored
// bundles, minified code, docs examples, function calls, mock values, server-only modules,
// seed files, else-if chains). A finding matches a label by file, line and rule (and
// context, where the label names one). The thresholds are the measured values: the rules
// may not get worse on it.
func TestCorpusPrecisionRecall(t *testing.T) {
	const minPrecision, minRecall = 1.0, 1.0
	root := copyTree(t, filepath.Join("testdata", "corpus"))
	labels := corpusLabels(t, root)
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := e.Scan(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		file string
		line int
		rule string
	}
	want := make(map[key]label)
	for _, l := range labels {
		want[key{l.file, l.line, l.rule}] = l
	}
	tp, fp := map[string]int{}, map[string]int{}
	matched := make(map[key]bool)
	for _, f := range rep.Findings {
		k := key{f.File, f.Line, f.Rule}
		l, ok := want[k]
		switch {
		case !ok:
			fp[f.Rule]++
			t.Logf("false positive: %s:%d %s [%s, %s] %s", f.File, f.Line, f.Rule, f.Detector, f.Context, f.Message)
		case l.context != "" && l.context != f.Context:
			fp[f.Rule]++
			t.Logf("wrong context: %s is %s, labelled %s", l, f.Context, l.context)
		default:
			tp[f.Rule]++
			matched[k] = true
		}
	}
	fn := map[string]int{}
	for k, l := range want {
		if !matched[k] {
			fn[l.rule]++
			t.Logf("false negative: %s", l)
		}
	}
	rules := []string{ruleSecrets, ruleSupabase, ruleMigrations, ruleNesting, ruleMarkers}
	var sumTP, sumFP, sumFN int
	for _, r := range rules {
		if tp[r]+fn[r] == 0 {
			t.Errorf("%s: no labelled finding in the corpus", r)
		}
		t.Logf("%-7s precision %.2f recall %.2f (%d true, %d false positives, %d missed)",
			r, ratio(tp[r], tp[r]+fp[r]), ratio(tp[r], tp[r]+fn[r]), tp[r], fp[r], fn[r])
		sumTP, sumFP, sumFN = sumTP+tp[r], sumFP+fp[r], sumFN+fn[r]
	}
	precision, recall := ratio(sumTP, sumTP+sumFP), ratio(sumTP, sumTP+sumFN)
	t.Logf("all     precision %.2f recall %.2f over %d labels, %d files", precision, recall, len(labels), rep.Stats.Files)
	if precision < minPrecision || recall < minRecall {
		t.Errorf("precision %.2f, recall %.2f: want at least %.2f and %.2f", precision, recall, minPrecision, minRecall)
	}
	for _, f := range rep.Findings {
		if strings.HasPrefix(f.File, "static/") {
			t.Errorf("finding in a bundle or minified file: %s:%d %s", f.File, f.Line, f.Rule)
		}
	}
	if got := slices.Sorted(func(yield func(string) bool) {
		for r := range rep.Stats.Skipped {
			if !yield(string(r)) {
				return
			}
		}
	}); !slices.Equal(got, []string{string(SkipMinified), string(SkipBundle)}) {
		t.Errorf("skipped %v, want a minified file and a vendored bundle", rep.Stats.Skipped)
	}
}

func ratio(n, d int) float64 {
	if d == 0 {
		return 1
	}
	return float64(n) / float64(d)
}
