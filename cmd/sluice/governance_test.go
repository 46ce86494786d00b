package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `sluice governance scan`: exit 0 on a clean tree, 1 with findings (JSON lines carry file,
// line and rule, the secret never whole), 2 for a rules file that does not parse.
func TestGovernanceScanCommand(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "README.md"), "# a clean tree\n")
	if code, stdout, stderr := cli(t, "governance", "scan", dir); code != exitOK {
		t.Fatalf("clean tree: exit %d\n%s%s", code, stdout, stderr)
	}
	// Assembled at run time so no secret-shaped string is in the repository.
	secret := "AK" + "IA" + "2E5XQ7MR" + "B4JN6WTY"
	writeFile(t, filepath.Join(dir, "config.py"), "import boto3\n\naws_access_key_id = \""+secret+"\"\n")
	code, stdout, stderr := cli(t, "governance", "scan", dir, "--format", "json")
	if code != exitFailed {
		t.Fatalf("tree with a key: exit %d, want %d\n%s%s", code, exitFailed, stdout, stderr)
	}
	var f struct {
		File string `json:"file"`
		Line int    `json:"line"`
		Rule string `json:"rule"`
	}
	if err := json.Unmarshal([]byte(strings.SplitN(stdout, "\n", 2)[0]), &f); err != nil {
		t.Fatalf("first JSON line: %v\n%s", err, stdout)
	}
	if f.File != "config.py" || f.Line != 3 || f.Rule != "GOV-001" {
		t.Fatalf("finding %+v, want GOV-001 at config.py:3", f)
	}
	if strings.Contains(stdout+stderr, secret) {
		t.Fatal("the secret was printed whole")
	}
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte("rules:\n  - id: CUSTOM-1\n    regex: \"(unclosed\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := cli(t, "governance", "scan", dir, "--rules", rules); code != exitUsage || !strings.Contains(stderr, "rules.yaml:") {
		t.Fatalf("bad rules file: exit %d, want %d naming rules.yaml:LINE: %s", code, exitUsage, stderr)
	}
}

// A checked-in library bundle is skipped, and the summary says so; --include-generated
// scans it.
func TestGovernanceScanIncludeGenerated(t *testing.T) {
	dir := t.TempDir()
	secret := "AK" + "IA" + "2E5XQ7MR" + "B4JN6WTY"
	writeFile(t, filepath.Join(dir, "react-dom.development.js"), "var awsKey = \""+secret+"\";\n")
	code, stdout, stderr := cli(t, "governance", "scan", dir)
	if code != exitOK || !strings.Contains(stdout, "skipped 1 vendored bundle") {
		t.Fatalf("default: exit %d, want %d and the bundle counted as skipped\n%s%s", code, exitOK, stdout, stderr)
	}
	if code, stdout, stderr := cli(t, "governance", "scan", dir, "--include-generated"); code != exitFailed || !strings.Contains(stdout, "react-dom.development.js:1") {
		t.Fatalf("--include-generated: exit %d, want %d with the bundle's finding\n%s%s", code, exitFailed, stdout, stderr)
	}
}
