// Package version says which Sluice this is: the release, and the commit it was built from
// when the build knows it.
package version

import (
	"runtime/debug"
	"strings"
)

// Release is the release this tree is.
const Release = "0.1.0"

// commit is set at link time by `make bin/sluice` (-X ...version.commit=$(git describe)).
var commit string

// String is the version as semver: the release, with the commit as build metadata when
// known ("0.1.0+12cb203", "0.1.0+12cb203-dirty").
func String() string {
	if c := Commit(); c != "" {
		return Release + "+" + c
	}
	return Release
}

// Commit is the commit the binary was built from: the one the link set, else the one the
// Go toolchain recorded (go build with VCS stamping), else "".
func Commit() string {
	if commit != "" {
		return sanitize(commit)
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" && dirty {
		rev += "-dirty"
	}
	return rev
}

// sanitize keeps what semver build metadata allows: [0-9A-Za-z-] and dots.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '-', r == '.':
			return r
		}
		return '-'
	}, strings.TrimSpace(s))
}
