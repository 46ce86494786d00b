// Command checks holds the example pipeline's gate checks that no standard tool covers:
//
//	checks governance DIR   secrets and unresolved AI markers in the tree
//	checks baseline FILE    the backup baseline is well formed
//	checks release DIR      VERSION is semver and CHANGELOG.md describes it
//
// It exits 1 when a check finds a problem and 2 on bad usage.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: checks governance DIR | baseline FILE | release DIR")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "governance":
		err = governance(os.Args[2])
	case "baseline":
		err = baseline(os.Args[2])
	case "release":
		err = release(os.Args[2])
	default:
		fmt.Fprintf(os.Stderr, "checks: unknown check %q\n", os.Args[1])
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type rule struct {
	id, msg string
	re      *regexp.Regexp
}

// The patterns are written so that this file does not match them itself.
var rules = []rule{
	{"GOV-001", "AWS access key id", regexp.MustCompile(`AKIA[0-9A-Z]{16}`)},
	{"GOV-001", "live or test API secret key", regexp.MustCompile(`\bsk_(live|test)_[0-9A-Za-z]{16,}`)},
	{"GOV-001", "private key", regexp.MustCompile(`-----BEGIN ([A-Z]+ )?PRIVATE` + ` KEY-----`)},
	{"GOV-002", "unresolved AI marker", regexp.MustCompile(`(?i)\b(TODO|FIXME)\(ai\)`)},
}

// maxFileBytes keeps large generated or binary blobs out of a source tree.
const maxFileBytes = 1 << 20

func governance(dir string) error {
	var findings []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Size() > maxFileBytes {
			findings = append(findings, fmt.Sprintf("%s: GOV-003: file of %d bytes exceeds %d", path, info.Size(), maxFileBytes))
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.IndexByte(data, 0) >= 0 {
			return nil // binary
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 0, 64*1024), maxFileBytes)
		for line := 1; sc.Scan(); line++ {
			for _, r := range rules {
				if loc := r.re.FindStringIndex(sc.Text()); loc != nil {
					findings = append(findings, fmt.Sprintf("%s:%d:%d: %s: %s", path, line, loc[0]+1, r.id, r.msg))
				}
			}
		}
		return sc.Err()
	})
	if err != nil {
		return fmt.Errorf("governance: %w", err)
	}
	if len(findings) > 0 {
		return fmt.Errorf("governance: %d finding(s):\n%s", len(findings), strings.Join(findings, "\n"))
	}
	fmt.Printf("governance: %d rules, no findings\n", len(rules))
	return nil
}

// Baseline is the expected shape of the example database that backups are verified against.
type Baseline struct {
	Database string  `json:"database"`
	Tables   []Table `json:"tables"`
}

type Table struct {
	Name    string   `json:"name"`
	Columns []Column `json:"columns"`
	MinRows int64    `json:"min_rows"`
}

type Column struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Nullable bool   `json:"nullable"`
}

func baseline(file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b Baseline
	if err := dec.Decode(&b); err != nil {
		return fmt.Errorf("baseline %s: %w", file, err)
	}
	var problems []error
	if b.Database == "" {
		problems = append(problems, errors.New("database: empty"))
	}
	if len(b.Tables) == 0 {
		problems = append(problems, errors.New("tables: none"))
	}
	tables := map[string]bool{}
	columns := 0
	for i, t := range b.Tables {
		where := fmt.Sprintf("tables[%d] %q", i, t.Name)
		switch {
		case t.Name == "":
			problems = append(problems, fmt.Errorf("%s: empty name", where))
		case tables[t.Name]:
			problems = append(problems, fmt.Errorf("%s: duplicate table", where))
		}
		tables[t.Name] = true
		if t.MinRows < 0 {
			problems = append(problems, fmt.Errorf("%s: min_rows %d is negative", where, t.MinRows))
		}
		if len(t.Columns) == 0 {
			problems = append(problems, fmt.Errorf("%s: no columns", where))
		}
		seen := map[string]bool{}
		for j, c := range t.Columns {
			if c.Name == "" || c.Type == "" || seen[c.Name] {
				problems = append(problems, fmt.Errorf("%s: columns[%d] %q: needs a unique name and a type", where, j, c.Name))
			}
			seen[c.Name] = true
			columns++
		}
	}
	if err := errors.Join(problems...); err != nil {
		return fmt.Errorf("baseline %s:\n%w", file, err)
	}
	fmt.Printf("baseline %s: database %s, %d tables, %d columns\n", file, b.Database, len(b.Tables), columns)
	return nil
}

var semver = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$`)

func release(dir string) error {
	raw, err := os.ReadFile(filepath.Join(dir, "VERSION"))
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	version := strings.TrimSpace(string(raw))
	if !semver.MatchString(version) {
		return fmt.Errorf("release: VERSION %q is not a semantic version", version)
	}
	changelog, err := os.ReadFile(filepath.Join(dir, "CHANGELOG.md"))
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	heading := "## " + version
	for line := range strings.Lines(string(changelog)) {
		if strings.TrimSpace(line) == heading || strings.HasPrefix(line, heading+" ") {
			fmt.Printf("release %s: ready to deploy\n", version)
			return nil
		}
	}
	return fmt.Errorf("release: CHANGELOG.md has no %q section for VERSION %s", heading, version)
}
