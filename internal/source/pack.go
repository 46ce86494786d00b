package source

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// epoch is the modification time of every entry, so the digest depends on content only.
var epoch = time.Unix(0, 0)

// Pack writes dir as a gzip-compressed tar to w: entries in lexical walk order, modes kept
// (exec bits), times, owners and names of owners zeroed, so the same tree always gives the
// same bytes. It honours .gitignore files at every level and .git/info/exclude, and always
// leaves out .git. Symlinks are kept when they point inside dir; sockets and other special
// files, which git does not track either, are left out.
func Pack(ctx context.Context, dir string, w io.Writer, l Limits) error {
	l = l.withDefaults()
	// The walk does not follow symlinks, so a root given through one is resolved first.
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	if fi, err := os.Stat(root); err != nil {
		return fmt.Errorf("pack: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("pack %s: not a directory", dir)
	}

	gz, err := gzip.NewWriterLevel(&limitWriter{w: w, max: l.MaxBundleBytes}, gzip.BestSpeed)
	if err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	tw := tar.NewWriter(gz)
	p := &packer{ctx: ctx, root: root, tw: tw, l: l}
	p.patterns = readExclude(root)
	if err := filepath.WalkDir(root, p.visit); err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	return nil
}

type packer struct {
	ctx      context.Context
	root     string
	tw       *tar.Writer
	l        Limits
	patterns []gitignore.Pattern // in increasing priority: outer .gitignore files first
	files    int
	total    int64
}

func (p *packer) visit(abs string, d fs.DirEntry, walkErr error) error {
	if walkErr != nil {
		return walkErr
	}
	if err := p.ctx.Err(); err != nil {
		return err
	}
	rel, err := filepath.Rel(p.root, abs)
	if err != nil {
		return err
	}
	rel = filepath.ToSlash(rel)
	if rel == "." {
		return p.readIgnore(abs, nil)
	}
	parts := strings.Split(rel, "/")
	isDir := d.IsDir()
	if isDir && d.Name() == ".git" {
		return filepath.SkipDir
	}
	if gitignore.NewMatcher(p.patterns).Match(parts, isDir) {
		if isDir {
			// Like git, files below an ignored directory cannot be re-included.
			return filepath.SkipDir
		}
		return nil
	}
	info, err := d.Info()
	if err != nil {
		return err
	}
	hdr := &tar.Header{
		Name:    rel,
		Mode:    int64(info.Mode().Perm()),
		ModTime: epoch,
		Format:  tar.FormatPAX,
	}
	switch {
	case isDir:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case info.Mode().IsRegular():
		hdr.Typeflag = tar.TypeReg
		hdr.Size = info.Size()
	case info.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(abs)
		if err != nil {
			return err
		}
		if escapes(rel, target) {
			return fmt.Errorf("%w: symlink %s points outside the tree to %s", ErrUnsafeEntry, rel, target)
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = filepath.ToSlash(target)
	default:
		return nil
	}
	if err := p.count(rel, hdr.Size); err != nil {
		return err
	}
	if err := p.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if hdr.Typeflag == tar.TypeReg {
		if err := p.copyFile(abs, rel, hdr.Size); err != nil {
			return err
		}
	}
	if isDir {
		return p.readIgnore(abs, parts)
	}
	return nil
}

func (p *packer) count(rel string, size int64) error {
	p.files++
	if p.files > p.l.MaxFiles {
		return fmt.Errorf("%w: more than %d files (is a build or dependency directory missing from .gitignore?)", ErrTooLarge, p.l.MaxFiles)
	}
	if size > p.l.MaxFileBytes {
		return fmt.Errorf("%w: %s is %d bytes, above the %d-byte file limit", ErrTooLarge, rel, size, p.l.MaxFileBytes)
	}
	p.total += size
	if p.total > p.l.MaxTotalBytes {
		return fmt.Errorf("%w: tree exceeds %d bytes at %s", ErrTooLarge, p.l.MaxTotalBytes, rel)
	}
	return nil
}

func (p *packer) copyFile(abs, rel string, size int64) error {
	f, err := os.Open(abs)
	if err != nil {
		return err
	}
	defer f.Close()
	// A file that grows while packing must not break the header's size.
	if _, err := io.CopyN(p.tw, f, size); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	return nil
}

// readIgnore appends the patterns of dir/.gitignore, scoped to dir (domain).
func (p *packer) readIgnore(dir string, domain []string) error {
	ps, err := ReadIgnorePatterns(filepath.Join(dir, ".gitignore"), domain)
	if err != nil {
		return err
	}
	p.patterns = append(p.patterns, ps...)
	return nil
}

// readExclude reads the repository's .git/info/exclude, the lowest-priority patterns; a
// missing or unreadable one is no patterns, as for git.
func readExclude(root string) []gitignore.Pattern {
	ps, _ := ReadIgnorePatterns(filepath.Join(root, ".git", "info", "exclude"), nil)
	return ps
}

// ReadIgnorePatterns reads the patterns of one ignore file (.gitignore syntax), scoped to
// domain (the path of its directory in the tree); a missing file is no patterns.
func ReadIgnorePatterns(file string, domain []string) ([]gitignore.Pattern, error) {
	f, err := os.Open(file)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ps []gitignore.Pattern
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		ps = append(ps, gitignore.ParsePattern(line, domain))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return ps, nil
}

// escapes reports whether a symlink at rel (slash-separated, relative to the tree root)
// with this target resolves, lexically, outside the tree.
func escapes(rel, target string) bool {
	target = filepath.ToSlash(target)
	if path.IsAbs(target) {
		return true
	}
	joined := path.Join(path.Dir(rel), target)
	return joined == ".." || strings.HasPrefix(joined, "../")
}
