// Package gitignore tells which entries of a tree git leaves out: those the patterns of
// .gitignore files at every level, and of .git/info/exclude, ignore. A walk asks Ignored of
// each entry and calls Enter for each directory it goes into, so that a nested .gitignore
// applies below its directory. The source bundle (internal/source) and the governance scan
// both walk with it, so a scan sees the files a bundle carries.
package gitignore

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	gogitignore "github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// Matcher holds the patterns of the directories a walk of one tree has entered.
type Matcher struct {
	root string
	// In increasing priority: .git/info/exclude, then outer .gitignore files first.
	patterns []gogitignore.Pattern
}

// New returns the matcher of the tree at root, holding root/.git/info/exclude; a missing or
// unreadable one is no patterns, as for git. Enter(nil) adds the root's own .gitignore.
func New(root string) *Matcher {
	ps, _ := readPatterns(filepath.Join(root, ".git", "info", "exclude"), nil)
	return &Matcher{root: root, patterns: ps}
}

// Enter adds the patterns of the .gitignore of the directory at rel (its path in the tree,
// split at '/'; nil for the root), scoped to that directory. A missing file adds none.
func (m *Matcher) Enter(rel []string) error {
	ps, err := readPatterns(filepath.Join(m.root, filepath.Join(rel...), ".gitignore"), rel)
	if err != nil {
		return err
	}
	m.patterns = append(m.patterns, ps...)
	return nil
}

// Ignored reports whether the patterns entered so far leave out the entry at rel. Like git,
// a walk does not go into an ignored directory: what is below it cannot be re-included.
func (m *Matcher) Ignored(rel []string, isDir bool) bool {
	return gogitignore.NewMatcher(m.patterns).Match(rel, isDir)
}

// readPatterns reads the patterns of one ignore file (.gitignore syntax), scoped to domain
// (the path of its directory in the tree); a missing file is no patterns.
func readPatterns(file string, domain []string) ([]gogitignore.Pattern, error) {
	f, err := os.Open(file)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read ignore patterns: %w", err)
	}
	defer f.Close()
	var ps []gogitignore.Pattern
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		ps = append(ps, gogitignore.ParsePattern(line, domain))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return ps, nil
}
