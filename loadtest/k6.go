// Package loadtest runs k6 load tests as a subprocess and reads their outcome: the
// thresholds' verdicts and the headline metrics, from a handleSummary JSON export the engine
// arranges around the user's script. It knows nothing of NATS; workers/load adapts it to the
// load stage kind and `sluice load run` runs it locally.
package loadtest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// K6Version is the k6 release Sluice is built and tested with (tools/go.mod).
const K6Version = "v1.8.1"

// K6Env names the environment variable that points at a k6 binary, ahead of PATH.
const K6Env = "SLUICE_K6"

// module is the main module's path, which identifies the repository root when looking for
// the bin/k6 that `make bin/k6` builds.
const module = "github.com/sluice-ci/sluice"

// FindK6 locates the k6 binary: $SLUICE_K6, then k6 on PATH, then bin/k6 beside the running
// executable (make puts bin/sluice and bin/k6 together), then bin/k6 in the repository that
// contains the working directory.
func FindK6() (string, error) {
	if p := os.Getenv(K6Env); p != "" {
		if err := executable(p); err != nil {
			return "", fmt.Errorf("%w: $%s=%s: %w (build k6 with `make bin/k6`)", ErrK6NotFound, K6Env, p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("k6"); err == nil {
		return p, nil
	}
	var tried []string
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "k6")
		if executable(p) == nil {
			return p, nil
		}
		tried = append(tried, p)
	}
	if root, err := RepoRoot(); err == nil {
		p := filepath.Join(root, "bin", "k6")
		if executable(p) == nil {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("%w: not at $%s, not on PATH, not at %s; build it with `make bin/k6` (k6 %s from tools/go.mod) or set $%s",
		ErrK6NotFound, K6Env, strings.Join(tried, " or "), K6Version, K6Env)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// RepoRoot returns the Sluice repository that contains the working directory: the nearest
// ancestor whose go.mod declares the main module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the repository root: %w", err)
	}
	for {
		if isMainModule(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find the repository root: no go.mod of %s above the working directory", module)
		}
		dir = parent
	}
}

func isMainModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) == 2 && fields[0] == "module" {
			return fields[1] == module
		}
	}
	return false
}
