package version

import (
	"regexp"
	"testing"
)

// The version is semver (the micro service that serves the run API refuses anything else),
// whatever git describe gave the link.
func TestStringIsSemver(t *testing.T) {
	semver := regexp.MustCompile(`^\d+\.\d+\.\d+(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)
	for _, c := range []string{"", "12cb203", "v0.1.0-3-g12cb203-dirty", "weird/branch name\n"} {
		commit = c
		if got := String(); !semver.MatchString(got) {
			t.Errorf("commit %q: version %q is not semver", c, got)
		}
	}
	commit = ""
}
