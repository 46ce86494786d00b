package governance

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/sluice-ci/sluice/internal/gitignore"
)

// fileJob is a file the walk hands to the scanners.
type fileJob struct {
	abs, rel string
	size     int64
}

// walker walks a tree the way git sees it: .gitignore files at every level and
// .git/info/exclude are honoured (by the same matcher internal/source packs a bundle with),
// .git and vendored directories are left out. It does not follow symlinks.
type walker struct {
	root     string
	skipDirs map[string]bool
	ignore   *gitignore.Matcher
	skipped  map[SkipReason]int
}

func newWalker(root string, skipDirs map[string]bool) *walker {
	return &walker{root: root, skipDirs: skipDirs, ignore: gitignore.New(root), skipped: make(map[SkipReason]int)}
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
			return w.ignore.Enter(nil)
		}
		parts := strings.Split(rel, "/")
		if d.IsDir() {
			if w.skipDirs[d.Name()] {
				w.skipped[SkipVendored]++
				return filepath.SkipDir
			}
			if w.ignore.Ignored(parts, true) {
				w.skipped[SkipIgnored]++
				return filepath.SkipDir
			}
			return w.ignore.Enter(parts)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if w.ignore.Ignored(parts, false) {
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
