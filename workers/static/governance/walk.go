package governance

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"

	"github.com/sluice-ci/sluice/internal/source"
)

// fileJob is a file the walk hands to the scanners.
type fileJob struct {
	abs, rel string
	size     int64
}

// walker walks a tree the way git sees it: .gitignore files at every level and
// .git/info/exclude are honoured (as internal/source does when it packs a bundle), .git and
// vendored directories are left out. It does not follow symlinks.
type walker struct {
	root     string
	skipDirs map[string]bool
	patterns []gitignore.Pattern // outer .gitignore files first, so later ones win
	skipped  map[SkipReason]int
}

func newWalker(root string, skipDirs map[string]bool) *walker {
	w := &walker{root: root, skipDirs: skipDirs, skipped: make(map[SkipReason]int)}
	w.patterns, _ = source.ReadIgnorePatterns(filepath.Join(root, ".git", "info", "exclude"), nil)
	return w
}

// walk calls emit for each regular file to scan, in lexical order.
func (w *walker) walk(ctx context.Context, emit func(fileJob) error) error {
	return filepath.WalkDir(w.root, func(abs string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(w.root, abs)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return w.readIgnore(abs, nil)
		}
		parts := strings.Split(rel, "/")
		if d.IsDir() {
			if w.skipDirs[d.Name()] {
				w.skipped[SkipVendored]++
				return filepath.SkipDir
			}
			if gitignore.NewMatcher(w.patterns).Match(parts, true) {
				w.skipped[SkipIgnored]++
				return filepath.SkipDir
			}
			return w.readIgnore(abs, parts)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if gitignore.NewMatcher(w.patterns).Match(parts, false) {
			w.skipped[SkipIgnored]++
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return emit(fileJob{abs: abs, rel: rel, size: info.Size()})
	})
}

// readIgnore appends the patterns of dir/.gitignore, scoped to dir.
func (w *walker) readIgnore(dir string, domain []string) error {
	ps, err := source.ReadIgnorePatterns(filepath.Join(dir, ".gitignore"), domain)
	if err != nil {
		return err
	}
	w.patterns = append(w.patterns, ps...)
	return nil
}
