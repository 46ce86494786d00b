package source

import (
	"archive/tar"
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

	"github.com/sluice-ci/sluice/internal/gitignore"
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
	p := &packer{ctx: ctx, root: root, tw: tw, l: l, ignore: gitignore.New(root)}
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
	ctx    context.Context
	root   string
	tw     *tar.Writer
	l      Limits
	ignore *gitignore.Matcher
	files  int
	total  int64
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
		return p.ignore.Enter(nil)
	}
	parts := strings.Split(rel, "/")
	isDir := d.IsDir()
	if isDir && d.Name() == ".git" {
		return filepath.SkipDir
	}
	if p.ignore.Ignored(parts, isDir) {
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
		return p.ignore.Enter(parts)
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
