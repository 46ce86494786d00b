// Package pgcluster finds the machine's PostgreSQL binaries and starts throwaway clusters
// with them: initdb into a fresh directory, a server on a free loopback port run as an
// unprivileged user, removed again on Close. backupverify restores dumps into such a
// cluster, and tests use one as their real PostgreSQL.
package pgcluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// InstallHint says how to get the binaries; error messages and test failures end with it.
const InstallHint = "install the PostgreSQL server binaries (Debian/Ubuntu: apt-get install -y postgresql-15; " +
	"they land in /usr/lib/postgresql/15/bin) or name their directory with --pg-bin"

// Tools a throwaway cluster needs, and the client tools backupverify runs.
var (
	ServerTools = []string{"initdb", "postgres"}
	ClientTools = []string{"pg_dump", "pg_restore"}
)

// debianRoot holds one bin directory per installed major version (Debian and Ubuntu).
const debianRoot = "/usr/lib/postgresql"

// Bin is a directory of PostgreSQL binaries.
type Bin struct {
	Dir string
}

// Path is the full path of tool in b.
func (b Bin) Path(tool string) string { return filepath.Join(b.Dir, tool) }

// FindBin returns the directory holding every one of tools: dir itself when it is not
// empty, else the newest /usr/lib/postgresql/<major>/bin that has them all, else the
// directory on PATH that holds the first tool. The error wraps ErrNoBinaries and names
// what is missing where.
func FindBin(dir string, tools ...string) (Bin, error) {
	if dir != "" {
		if missing := missingTools(dir, tools); len(missing) > 0 {
			return Bin{}, fmt.Errorf("%w: no %s in %s; %s", ErrNoBinaries, strings.Join(missing, ", "), dir, InstallHint)
		}
		return Bin{Dir: dir}, nil
	}
	for _, d := range debianDirs() {
		if len(missingTools(d, tools)) == 0 {
			return Bin{Dir: d}, nil
		}
	}
	if len(tools) > 0 {
		if p, err := exec.LookPath(tools[0]); err == nil {
			d := filepath.Dir(p)
			if len(missingTools(d, tools)) == 0 {
				return Bin{Dir: d}, nil
			}
		}
	}
	return Bin{}, fmt.Errorf("%w: no directory under %s/*/bin or on PATH holds %s; %s",
		ErrNoBinaries, debianRoot, strings.Join(tools, ", "), InstallHint)
}

// debianDirs lists /usr/lib/postgresql/<major>/bin, newest major first: a newer pg_dump
// reads older servers, not the other way round.
func debianDirs() []string {
	entries, err := os.ReadDir(debianRoot)
	if err != nil {
		return nil
	}
	type version struct {
		major int
		dir   string
	}
	var vs []version
	for _, e := range entries {
		major, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		vs = append(vs, version{major, filepath.Join(debianRoot, e.Name(), "bin")})
	}
	slices.SortFunc(vs, func(a, b version) int { return b.major - a.major })
	dirs := make([]string, len(vs))
	for i, v := range vs {
		dirs[i] = v.dir
	}
	return dirs
}

func missingTools(dir string, tools []string) []string {
	var missing []string
	for _, t := range tools {
		fi, err := os.Stat(filepath.Join(dir, t))
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			missing = append(missing, t)
		}
	}
	return missing
}
