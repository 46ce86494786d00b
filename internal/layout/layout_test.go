package layout

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/sluice-ci/sluice/"

// The engines, and what no engine may depend on, even transitively.
var (
	engines = []string{"governance", "contract", "testreport", "backupverify", "loadtest", "e2e", "deploy", "lintwarn"}
	wire    = []string{"github.com/nats-io/", module + "internal/bus", module + "internal/auth", module + "workers", module + "coordinator", module + "proto/"}
)

// deps lists what the packages matching pattern import, directly or transitively (test
// files aside).
func deps(t *testing.T, pattern string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pattern)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list -deps %s: %v\n%s", pattern, err, stderr)
	}
	return strings.Fields(string(out))
}

// violations are the dependencies of pattern under a banned prefix, save those allowed.
func violations(t *testing.T, pattern string, banned, allowed []string) []string {
	var bad []string
	for _, dep := range deps(t, pattern) {
		for _, b := range banned {
			if strings.HasPrefix(dep, b) && !hasPrefix(dep, allowed) {
				bad = append(bad, dep)
				break
			}
		}
	}
	return bad
}

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func TestEnginesKnowNothingOfTheBus(t *testing.T) {
	for _, e := range engines {
		t.Run(e, func(t *testing.T) {
			if bad := violations(t, "./"+e+"/...", wire, nil); len(bad) > 0 {
				t.Errorf("the %s engine depends on %s: keep the wire in its adapter (workers/...) and give the engine its own types", e, strings.Join(bad, ", "))
			}
		})
	}
}

func TestDecisionsKnowOnlyTheRunState(t *testing.T) {
	allowed := []string{module + "proto/sluice/v1", module + "coordinator/decide"}
	if bad := violations(t, "./coordinator/decide/...", wire, allowed); len(bad) > 0 {
		t.Errorf("coordinator/decide depends on %s: effects belong to the planner (coordinator), the decisions stay pure", strings.Join(bad, ", "))
	}
}

// The check itself must see a dependency: the worker runtime is built on NATS.
func TestTheCheckSeesWhatIsThere(t *testing.T) {
	for _, dep := range violations(t, "./workers", wire, nil) {
		if strings.HasPrefix(dep, "github.com/nats-io/nats.go") {
			return
		}
	}
	t.Fatal("the workers package shows no dependency on nats.go: the check is blind")
}
