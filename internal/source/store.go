package source

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// MetaDigest is the object metadata key holding the full "sha256:<hex>" digest.
const MetaDigest = "sluice-digest"

// Upload stores the bundle at path in store under its content digest and returns the
// digest "sha256:<hex>". path is a directory (packed with Pack) or an existing tar.gz file
// (checked with Validate first, so a bad bundle fails at submit time rather than on a
// worker). A bundle already stored is not uploaded again.
func Upload(ctx context.Context, store jetstream.ObjectStore, path string, l Limits) (string, error) {
	l = l.withDefaults()
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("source: %w", err)
	}
	var bundle *os.File
	if fi.IsDir() {
		bundle, err = os.CreateTemp("", "sluice-source-*.tar.gz")
		if err != nil {
			return "", fmt.Errorf("source: %w", err)
		}
		defer os.Remove(bundle.Name())
		defer bundle.Close()
		if err := Pack(ctx, path, bundle, l); err != nil {
			return "", err
		}
	} else {
		if fi.Size() > l.MaxBundleBytes {
			return "", fmt.Errorf("%w: %s is %d bytes, above the %d-byte bundle limit", ErrTooLarge, path, fi.Size(), l.MaxBundleBytes)
		}
		bundle, err = os.Open(path)
		if err != nil {
			return "", fmt.Errorf("source: %w", err)
		}
		defer bundle.Close()
		if err := Validate(ctx, bundle, l); err != nil {
			return "", fmt.Errorf("source bundle %s: %w", path, err)
		}
	}

	if _, err := bundle.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("source: %w", err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, bundle); err != nil {
		return "", fmt.Errorf("source: hash bundle: %w", err)
	}
	digest := digestOf(h)
	name, err := ObjectName(digest)
	if err != nil {
		return "", err
	}

	_, err = store.GetInfo(ctx, name)
	switch {
	case err == nil:
		return digest, nil
	case !errors.Is(err, jetstream.ErrObjectNotFound):
		return "", fmt.Errorf("source: look up %s: %w", digest, err)
	}
	if _, err := bundle.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("source: %w", err)
	}
	meta := jetstream.ObjectMeta{
		Name:        name,
		Description: "source bundle " + filepath.Base(path),
		Metadata:    map[string]string{MetaDigest: digest},
	}
	if _, err := store.Put(ctx, meta, bundle); err != nil {
		return "", fmt.Errorf("source: upload %s: %w", digest, err)
	}
	return digest, nil
}

// Cache keeps downloaded bundles in Dir, one file per digest, and extracts fresh copies.
// It is safe for concurrent use, also by several processes sharing Dir; do not copy it
// after first use.
type Cache struct {
	Dir    string
	Store  jetstream.ObjectStore
	Limits Limits

	mu       sync.Mutex
	inflight map[string]chan struct{} // digest hex -> closed when its download ends
}

// Checkout downloads the bundle (once per digest, cached, digest verified) and extracts a
// fresh copy into dest, which must not exist or be empty. A cached bundle is verified again
// on every use, and extracted from the very bytes that were hashed: a cached file that no
// longer has its digest (something wrote to the cache) is downloaded again, never run.
func (c *Cache) Checkout(ctx context.Context, digest, dest string) error {
	name, err := ObjectName(digest)
	if err != nil {
		return err
	}
	if c.Dir == "" || c.Store == nil {
		return errors.New("source cache: Dir and Store are required")
	}
	for attempt := 0; ; attempt++ {
		bundle, err := c.fetch(ctx, name, digest)
		if err != nil {
			return err
		}
		err = c.extractVerified(ctx, bundle, digest, dest)
		if errors.Is(err, ErrDigestMismatch) && attempt == 0 {
			_ = os.Remove(bundle)
			continue
		}
		return err
	}
}

// extractVerified extracts a cached bundle into dest, hashing the bytes it extracts: when
// they do not have the digest, dest is emptied and the error wraps ErrDigestMismatch.
func (c *Cache) extractVerified(ctx context.Context, file, digest, dest string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("source cache: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	extractErr := Extract(ctx, io.TeeReader(f, h), dest, c.Limits)
	// The hash must cover the whole file, also what Extract did not need to read.
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("source cache: %w", err)
	}
	if got := digestOf(h); got != digest {
		if entries, err := os.ReadDir(dest); err == nil {
			for _, e := range entries {
				_ = os.RemoveAll(filepath.Join(dest, e.Name()))
			}
		}
		return fmt.Errorf("%w: the cached bundle %s hashes to %s", ErrDigestMismatch, digest, got)
	}
	if extractErr != nil {
		return fmt.Errorf("source bundle %s: %w", digest, extractErr)
	}
	return nil
}

// fetch returns the cached file of a digest, downloading it first if needed. Concurrent
// callers for one digest wait for a single download; if it fails, each tries again itself.
func (c *Cache) fetch(ctx context.Context, name, digest string) (string, error) {
	file := filepath.Join(c.Dir, name+".tar.gz")
	for {
		if _, err := os.Stat(file); err == nil {
			return file, nil
		}
		c.mu.Lock()
		if wait, ok := c.inflight[name]; ok {
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		if c.inflight == nil {
			c.inflight = map[string]chan struct{}{}
		}
		done := make(chan struct{})
		c.inflight[name] = done
		c.mu.Unlock()

		err := c.download(ctx, name, digest, file)

		c.mu.Lock()
		delete(c.inflight, name)
		close(done)
		c.mu.Unlock()
		if err != nil {
			return "", err
		}
		return file, nil
	}
}

// download writes the object to a temporary file in Dir, hashing it on the way, and
// renames it into place only when the hash matches: the cache never holds a bad bundle.
func (c *Cache) download(ctx context.Context, name, digest, file string) error {
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return fmt.Errorf("source cache: %w", err)
	}
	obj, err := c.Store.Get(ctx, name)
	if err != nil {
		return fmt.Errorf("source bundle %s: %w", digest, err)
	}
	defer obj.Close()
	tmp, err := os.CreateTemp(c.Dir, "."+name+".download-*")
	if err != nil {
		return fmt.Errorf("source cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	h := sha256.New()
	limits := c.Limits.withDefaults()
	src := &limitReader{r: obj, left: limits.MaxBundleBytes}
	if _, err := io.Copy(io.MultiWriter(tmp, h), src); err != nil {
		if errors.Is(err, jetstream.ErrDigestMismatch) {
			return fmt.Errorf("%w: %s: %w", ErrDigestMismatch, digest, err)
		}
		return fmt.Errorf("source bundle %s: download: %w", digest, err)
	}
	if got := digestOf(h); got != digest {
		return fmt.Errorf("%w: asked for %s, downloaded bytes hash to %s", ErrDigestMismatch, digest, got)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("source cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("source cache: %w", err)
	}
	return nil
}
