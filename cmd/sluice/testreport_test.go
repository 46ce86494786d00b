package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `sluice testreport junit`: a JUnit file and a summary from `go test -json`, exit 1 when a
// test failed, 2 for input that is not `go test -json`; `split`: one line per shard, balanced
// by a timings file, 2 for a timings file that does not parse.
func TestTestReportCommand(t *testing.T) {
	dir := t.TempDir()
	in := func(name, content string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, content)
		return p
	}
	passing := in("pass.jsonl", "go: downloading example.com/x v1.0.0\n"+
		`{"Action":"run","Package":"example.com/p","Test":"TestA"}`+"\n"+
		`{"Action":"pass","Package":"example.com/p","Test":"TestA","Elapsed":0.5}`+"\n"+
		`{"Action":"pass","Package":"example.com/p","Elapsed":0.75}`+"\n")
	plain := in("plain.txt", "=== RUN   TestA\n--- PASS: TestA (0.00s)\nok  \texample.com/p\t0.1s\n")
	timings := in("timings.json", `{"a": 3, "b": 2, "c": 1.5, "d": 0.5}`)
	badTimings := in("bad-timings.json", "{\n  \"a\": 1,\n  oops\n}\n")
	failedXML, passedXML, written := filepath.Join(dir, "failed.xml"), filepath.Join(dir, "passed.xml"), filepath.Join(dir, "written.json")

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string   // exactly, when set
		want       []string // in stdout or stderr
	}{
		{name: "junit: a failed test is named with its output",
			args: []string{"junit", "../../testreport/testdata/gotest/fail.jsonl", "--out", failedXML}, wantCode: exitFailed,
			want: []string{"FAIL example.com/suite/charlie TestMaybeFail", "FAIL_ONE is set",
				"2 packages, 5 tests, 1 failed: example.com/suite/charlie.TestMaybeFail", "wrote " + failedXML + " (5 tests)"}},
		{name: "junit: every test passed, timings written",
			args: []string{"junit", passing, "--out", passedXML, "--timings", written}, wantCode: exitOK,
			wantStdout: "1 package, 1 test, 0 failed\n"},
		{name: "junit: not go test -json", args: []string{"junit", plain, "--out", filepath.Join(dir, "x.xml")}, wantCode: exitUsage,
			want: []string{"plain.txt: no `go test -json` events: line 1 is \"=== RUN   TestA\" (run go test with -json)"}},
		{name: "junit: no such file", args: []string{"junit", filepath.Join(dir, "nope.jsonl")}, wantCode: exitUsage,
			want: []string{"nope.jsonl: no such file"}},
		{name: "junit: two files", args: []string{"junit", passing, plain}, wantCode: exitUsage, want: []string{"at most one FILE"}},
		{name: "split by recorded durations, a new unit at their mean",
			// a=3 | b=2; e (new, 1.75) to b: 3.75; c to a: 4.5; d to b: 4.25.
			args: []string{"split", "--shards", "2", "--timings", timings, "e", "d", "c", "b", "a"}, wantCode: exitOK,
			wantStdout: "a c\nb d e\n"},
		{name: "split: an empty line for a shard without units", args: []string{"split", "--shards", "3", "only"}, wantCode: exitOK,
			wantStdout: "only\n\n\n"},
		{name: "split: a timings file that does not parse names its line",
			args: []string{"split", "--shards", "2", "--timings", badTimings, "a"}, wantCode: exitUsage,
			want: []string{"bad-timings.json: line 3, column 3: bad timings"}},
		{name: "split: no shards", args: []string{"split", "a"}, wantCode: exitUsage, want: []string{"--shards 0: want 1 or more"}},
		{name: "split: no units", args: []string{"split", "--shards", "2"}, wantCode: exitUsage, want: []string{"needs at least one UNIT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := cli(t, append([]string{"testreport"}, tt.args...)...)
			if code != tt.wantCode || tt.wantStdout != "" && stdout != tt.wantStdout {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout+stderr, w) {
					t.Errorf("output lacks %q\nstdout:\n%s\nstderr:\n%s", w, stdout, stderr)
				}
			}
		})
	}

	for file, want := range map[string]string{
		failedXML: `failures="1"`,
		passedXML: `<testcase name="TestA" classname="example.com/p" time="0.5">`,
		written:   `"example.com/p": 0.75`,
	} {
		if b, err := os.ReadFile(file); err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s: %v, want it to hold %s:\n%s", file, err, want, b)
		}
	}
}
