// Package source packs a source tree into a deterministic tar.gz bundle, stores it in the
// sources object store under its content digest, and fetches and extracts it on workers
// with protections against bundles that would write outside their tree (DESIGN section 7).
package source

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"
)

// Limits bound what a bundle may hold. A zero field takes its DefaultLimits value.
type Limits struct {
	MaxBundleBytes int64 // compressed bundle size
	MaxFileBytes   int64 // one file, uncompressed
	MaxTotalBytes  int64 // all files, uncompressed (bounds a gzip bomb)
	MaxFiles       int   // entries of any type
}

// DefaultLimits fit a large monorepo checkout without build outputs (which .gitignore
// usually excludes).
func DefaultLimits() Limits {
	return Limits{
		MaxBundleBytes: 512 << 20,
		MaxFileBytes:   256 << 20,
		MaxTotalBytes:  2 << 30,
		MaxFiles:       200_000,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxBundleBytes <= 0 {
		l.MaxBundleBytes = d.MaxBundleBytes
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = d.MaxFileBytes
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = d.MaxTotalBytes
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = d.MaxFiles
	}
	return l
}

const digestPrefix = "sha256:"

// ObjectName is the object store name of a digest: its hex part, since object names are
// safest without a colon. It rejects anything but "sha256:" and 64 lowercase hex digits.
func ObjectName(digest string) (string, error) {
	h, ok := strings.CutPrefix(digest, digestPrefix)
	if !ok || len(h) != sha256.Size*2 || strings.ToLower(h) != h {
		return "", fmt.Errorf("%w: %q (want sha256:<64 hex digits>)", ErrBadDigest, digest)
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", fmt.Errorf("%w: %q: %w", ErrBadDigest, digest, err)
	}
	return h, nil
}

func digestOf(h hash.Hash) string { return digestPrefix + hex.EncodeToString(h.Sum(nil)) }

// limitWriter fails once more than max bytes are written, so Pack stops early instead of
// producing a bundle the workers would refuse.
type limitWriter struct {
	w   io.Writer
	n   int64
	max int64
}

func (lw *limitWriter) Write(p []byte) (int, error) {
	lw.n += int64(len(p))
	if lw.n > lw.max {
		return 0, fmt.Errorf("%w: compressed bundle exceeds %d bytes", ErrTooLarge, lw.max)
	}
	return lw.w.Write(p)
}
