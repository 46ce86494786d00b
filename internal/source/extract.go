package source

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// maxLinkHops bounds symlink resolution when checking where links lead, like the kernel's
// ELOOP limit.
const maxLinkHops = 40

// Extract unpacks a gzip-compressed tar into dest, which must not exist or be an empty
// directory. It rejects the whole bundle on an entry that would escape the tree or exceed l,
// and leaves nothing behind then: it extracts into a temporary directory beside dest and
// renames it into place only when every entry passed.
func Extract(ctx context.Context, r io.Reader, dest string, l Limits) error {
	l = l.withDefaults()
	dest = filepath.Clean(dest)
	if err := checkDest(dest); err != nil {
		return err
	}
	parent := filepath.Dir(dest)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dest)+".extract-*")
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	x := &extractor{root: tmp, rootMode: 0o755, dirModes: map[string]fs.FileMode{}}
	if err := x.run(ctx, r, l); err != nil {
		removeTree(tmp)
		return err
	}
	// os.Rename does not replace a directory, even an empty one; Remove fails on a
	// directory that was filled in the meantime, which is then kept.
	if err := os.Remove(dest); err != nil && !errors.Is(err, fs.ErrNotExist) {
		removeTree(tmp)
		return fmt.Errorf("extract: destination %s: %w", dest, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		removeTree(tmp)
		return fmt.Errorf("extract: move into place: %w", err)
	}
	return nil
}

// checkDest refuses to replace a tree that holds something: that is the caller's to remove.
func checkDest(dest string) error {
	entries, err := os.ReadDir(dest)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("extract: destination %s: %w", dest, err)
	case len(entries) > 0:
		return fmt.Errorf("extract: destination %s is not empty: %w", dest, fs.ErrExist)
	}
	return nil
}

// Validate reads a bundle and applies every check of Extract that does not need the
// files on disk, without writing anything: for bundles handed over as a file.
func Validate(ctx context.Context, r io.Reader, l Limits) error {
	l = l.withDefaults()
	x := &extractor{dirModes: map[string]fs.FileMode{}}
	return x.walk(ctx, r, l, nil)
}

type extractor struct {
	root     string // temporary directory; "" when only validating
	rootMode fs.FileMode
	dirModes map[string]fs.FileMode // applied last, so read-only dirs can still be filled
	symlinks []string               // every symlink entry, checked on disk at the end
	regular  map[string]bool        // regular files so far: the only hard link targets
	entries  map[string]bool        // every path so far: duplicates are rejected
}

func (x *extractor) run(ctx context.Context, r io.Reader, l Limits) error {
	if err := x.walk(ctx, r, l, x.write); err != nil {
		return err
	}
	// Lexical checks cannot see a link that escapes through another link ("a/../x" where a
	// points up), so resolve every link on disk, confined to the tree.
	for _, name := range x.symlinks {
		if err := x.confined(name); err != nil {
			return err
		}
	}
	// Deepest first, so a read-only parent does not block its children's chmod.
	dirs := make([]string, 0, len(x.dirModes))
	for d := range x.dirModes {
		dirs = append(dirs, d)
	}
	slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, d := range dirs {
		if err := os.Chmod(x.path(d), x.dirModes[d]); err != nil {
			return fmt.Errorf("extract %s: %w", d, err)
		}
	}
	if err := os.Chmod(x.root, x.rootMode); err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	return nil
}

// walk checks each entry and hands it to write (nil: validate only).
func (x *extractor) walk(ctx context.Context, r io.Reader, l Limits, write func(*tar.Header, string, io.Reader) error) error {
	x.regular = map[string]bool{}
	x.entries = map[string]bool{}
	bundle := &limitReader{r: r, left: l.MaxBundleBytes}
	gz, err := gzip.NewReader(bundle)
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return err
		}
		return fmt.Errorf("source bundle is not gzip-compressed: %w", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	var files int
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				return err
			}
			return fmt.Errorf("read source bundle: %w", err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		files++
		if files > l.MaxFiles {
			return fmt.Errorf("%w: more than %d entries, at %q", ErrTooLarge, l.MaxFiles, hdr.Name)
		}
		// Sizes are checked from the header before any byte is read, so a gzip bomb is
		// refused before it is inflated.
		if hdr.Size > l.MaxFileBytes {
			return fmt.Errorf("%w: %q is %d bytes, above the %d-byte file limit", ErrTooLarge, hdr.Name, hdr.Size, l.MaxFileBytes)
		}
		total += hdr.Size
		if total > l.MaxTotalBytes {
			return fmt.Errorf("%w: entries exceed %d bytes in total, at %q", ErrTooLarge, l.MaxTotalBytes, hdr.Name)
		}
		name, err := x.check(hdr)
		if err != nil {
			return err
		}
		if name == "" || write == nil {
			continue
		}
		if err := write(hdr, name, tr); err != nil {
			if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrUnsafeEntry) {
				return err
			}
			return fmt.Errorf("extract %q: %w", hdr.Name, err)
		}
	}
}

// check validates one header and returns its cleaned, slash-separated name relative to the
// root; "" for the root directory entry itself ("./").
func (x *extractor) check(hdr *tar.Header) (string, error) {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return "", err
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeDir:
	case tar.TypeSymlink:
		if hdr.Linkname == "" || escapes(name, hdr.Linkname) {
			return "", fmt.Errorf("%w: symlink %q points outside the tree to %q", ErrUnsafeEntry, hdr.Name, hdr.Linkname)
		}
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil || target == "" {
			return "", fmt.Errorf("%w: hard link %q points outside the tree to %q", ErrUnsafeEntry, hdr.Name, hdr.Linkname)
		}
		if !x.regular[target] {
			return "", fmt.Errorf("%w: hard link %q must point to an earlier regular file, not %q", ErrUnsafeEntry, hdr.Name, hdr.Linkname)
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return "", fmt.Errorf("%w: %q is a device or fifo", ErrUnsafeEntry, hdr.Name)
	default:
		return "", fmt.Errorf("%w: %q has unsupported type %q", ErrUnsafeEntry, hdr.Name, hdr.Typeflag)
	}
	if name == "" {
		if hdr.Typeflag != tar.TypeDir {
			return "", fmt.Errorf("%w: root entry %q is not a directory", ErrUnsafeEntry, hdr.Name)
		}
		x.rootMode = fs.FileMode(hdr.Mode).Perm()
		return "", nil
	}
	// Writing below a symlink would write wherever it points.
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if x.entries[dir] && !x.isDir(dir) {
			return "", fmt.Errorf("%w: %q is inside %q, which is not a directory", ErrUnsafeEntry, hdr.Name, dir)
		}
	}
	if x.entries[name] && !(hdr.Typeflag == tar.TypeDir && x.isDir(name)) {
		return "", fmt.Errorf("%w: %q appears twice", ErrUnsafeEntry, hdr.Name)
	}
	x.entries[name] = true
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeLink:
		x.regular[name] = true
	case tar.TypeDir:
		// The owner keeps full access: a build writes into its tree and removes it later.
		x.dirModes[name] = fs.FileMode(hdr.Mode).Perm() | 0o700
	}
	return name, nil
}

func (x *extractor) isDir(name string) bool {
	_, ok := x.dirModes[name]
	return ok
}

// cleanName rejects absolute names and any ".." element, before cleaning can hide one.
func cleanName(name string) (string, error) {
	if name == "" || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: empty or NUL in entry name %q", ErrUnsafeEntry, name)
	}
	if path.IsAbs(name) || filepath.IsAbs(name) {
		return "", fmt.Errorf("%w: %q is an absolute path", ErrUnsafeEntry, name)
	}
	if slices.Contains(strings.Split(name, "/"), "..") {
		return "", fmt.Errorf("%w: %q has a .. element", ErrUnsafeEntry, name)
	}
	clean := path.Clean(name)
	if clean == "." {
		return "", nil
	}
	return clean, nil
}

func (x *extractor) path(name string) string {
	return filepath.Join(x.root, filepath.FromSlash(name))
}

func (x *extractor) write(hdr *tar.Header, name string, r io.Reader) error {
	p := x.path(name)
	// Parents may be implied by a file entry without their own directory entry.
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	case tar.TypeReg:
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, r)
		if err == nil {
			// Exact permission bits (umask aside); setuid, setgid and sticky are dropped.
			err = f.Chmod(fs.FileMode(hdr.Mode).Perm())
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	case tar.TypeSymlink:
		x.symlinks = append(x.symlinks, name)
		return os.Symlink(hdr.Linkname, p)
	case tar.TypeLink:
		target, _ := cleanName(hdr.Linkname)
		return os.Link(x.path(target), p)
	}
	return nil
}

// confined resolves the symlink at name component by component inside the root, failing
// when any step would leave it. Missing components are resolved lexically.
func (x *extractor) confined(name string) error {
	var stack []string // resolved components below the root
	todo := strings.Split(name, "/")
	hops := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return fmt.Errorf("%w: symlink %q resolves outside the tree", ErrUnsafeEntry, name)
			}
			stack = stack[:len(stack)-1]
			continue
		}
		cur := path.Join(append(stack, c)...)
		fi, err := os.Lstat(x.path(cur))
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			stack = append(stack, c)
			continue
		}
		hops++
		if hops > maxLinkHops {
			return fmt.Errorf("%w: symlink %q: too many levels of links", ErrUnsafeEntry, name)
		}
		target, err := os.Readlink(x.path(cur))
		if err != nil {
			return err
		}
		if path.IsAbs(target) {
			return fmt.Errorf("%w: symlink %q resolves through %q to absolute %q", ErrUnsafeEntry, name, cur, target)
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return nil
}

// removeTree removes a partly extracted tree, making directories writable first so
// read-only ones do not keep their children.
func removeTree(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}

// limitReader fails with ErrTooLarge once more than left bytes are read.
type limitReader struct {
	r    io.Reader
	left int64
}

func (lr *limitReader) Read(p []byte) (int, error) {
	if lr.left < 0 {
		return 0, fmt.Errorf("%w: compressed bundle above the limit", ErrTooLarge)
	}
	if int64(len(p)) > lr.left+1 {
		p = p[:lr.left+1]
	}
	n, err := lr.r.Read(p)
	lr.left -= int64(n)
	if lr.left < 0 {
		return n, fmt.Errorf("%w: compressed bundle above the limit", ErrTooLarge)
	}
	return n, err
}
