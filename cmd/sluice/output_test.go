package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// One fleet and one finished run for the conventions every command shares: -o, completion
// of run ids and stage names, and a --follow that ends with its run.
func TestOutputCompletionAndFollow(t *testing.T) {
	url := startTestFleet(t, "all")
	code, stdout, stderr := cli(t, "--nats", url, "run", "testdata/pass.yaml", "--source", "testdata/tree", "--ref", "main")
	if code != exitOK {
		t.Fatalf("run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	id := runID(t, stdout)

	t.Run("-o", func(t *testing.T) {
		code, stdout, stderr := cli(t, "--nats", url, "runs", "show", id, "-o", "yaml")
		var doc struct {
			ID     string `yaml:"id"`
			Status string `yaml:"status"`
			Stages []struct {
				Name string `yaml:"name"`
			} `yaml:"stages"`
		}
		if err := yaml.Unmarshal([]byte(stdout), &doc); code != exitOK || err != nil || doc.ID != id || doc.Status != "RUN_STATUS_PASSED" || len(doc.Stages) != 3 {
			t.Errorf("runs show -o yaml: exit %d, %v, %+v\n%s", code, err, doc, stderr)
		}
		code, stdout, _ = cli(t, "--nats", url, "runs", "list", "-o", "json")
		var first struct{ ID string }
		if err := json.Unmarshal([]byte(strings.SplitN(stdout, "\n", 2)[0]), &first); code != exitOK || err != nil || first.ID != id {
			t.Errorf("runs list -o json: exit %d, %v, first line %q", code, err, stdout)
		}
		// The older --json still works.
		if code, stdout, _ := cli(t, "--nats", url, "runs", "show", id, "--json"); code != exitOK || !strings.HasPrefix(stdout, "{") {
			t.Errorf("runs show --json: exit %d, %q", code, stdout)
		}
		code, _, stderr = cli(t, "--nats", url, "runs", "list", "-o", "xml")
		if code != exitUsage || !strings.Contains(stderr, `-o "xml": want table, json or yaml`) {
			t.Errorf("-o xml: exit %d, %s", code, stderr)
		}
	})

	t.Run("completion", func(t *testing.T) {
		_, stdout, _ := cli(t, "--nats", url, "__complete", "runs", "show", id[:4])
		if !strings.Contains(stdout, id+"\tpass passed") {
			t.Errorf("completing a run id: %q", stdout)
		}
		_, stdout, _ = cli(t, "--nats", url, "__complete", "logs", id, "ch")
		if lines := strings.Split(strings.TrimSpace(stdout), "\n"); len(lines) != 2 || lines[0] != "check\tpassed" {
			t.Errorf("completing a stage of %s: %q", id, stdout)
		}
		// A fleet that is not there completes nothing, quickly.
		start := time.Now()
		_, stdout, _ = cli(t, "--nats", "nats://127.0.0.1:1", "__complete", "runs", "show", "")
		if strings.Contains(stdout, id) || time.Since(start) > 10*time.Second {
			t.Errorf("completing against no fleet took %s: %q", time.Since(start), stdout)
		}
	})

	t.Run("workers list", func(t *testing.T) {
		code, stdout, stderr := cli(t, "--nats", url, "workers", "list", "-o", "json")
		kinds := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
			var w struct {
				Kind  string
				Pool  string
				Slots int
			}
			if err := json.Unmarshal([]byte(line), &w); err != nil || w.Pool != "default" || w.Slots != 2 {
				t.Errorf("workers list line %q: %v", line, err)
			}
			kinds[w.Kind]++
		}
		if code != exitOK || len(kinds) != 7 {
			t.Errorf("workers list: exit %d, kinds %v; want one worker of each of the 7 kinds\n%s", code, kinds, stderr)
		}
		_, stdout, _ = cli(t, "--nats", url, "workers", "list", "--kind", "e2e")
		if lines := strings.Split(strings.TrimSpace(stdout), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "e2e") || !strings.Contains(lines[1], "default") {
			t.Errorf("workers list --kind e2e:\n%s", stdout)
		}
	})

	t.Run("follow ends with the run", func(t *testing.T) {
		for _, args := range [][]string{
			{"logs", id, "read", "--follow"},
			{"events", "--follow", "--run", id, "--type", "stage.passed"},
		} {
			start := time.Now()
			code, stdout, stderr := cli(t, append([]string{"--nats", url}, args...)...)
			if code != exitOK || time.Since(start) > 15*time.Second || stdout == "" {
				t.Errorf("%v on a finished run: exit %d after %s\n%s\n%s", args, code, time.Since(start), stdout, stderr)
			}
		}
	})
}

// sluice retry reopens a failed run at its failed stage, which runs again as attempt 2.
func TestRetryRunsAFailedStageAgain(t *testing.T) {
	url := startTestFleet(t, "all")
	_, stdout, _ := cli(t, "--nats", url, "run", "testdata/fail.yaml", "--no-source", "--ref", "main")
	id := runID(t, stdout)
	code, stdout, stderr := cli(t, "--nats", url, "retry", id, "broken")
	if code != exitOK || !strings.Contains(stdout, "retry: run "+id+" is running") {
		t.Fatalf("retry: exit %d\n%s\n%s", code, stdout, stderr)
	}
	waitUntil(t, "the retried stage's second attempt to fail", func() bool {
		_, out, _ := cli(t, "--nats", url, "runs", "show", id, "-o", "json")
		return strings.Contains(out, `"status":"RUN_STATUS_FAILED"`) && strings.Contains(out, `"name":"broken","status":"STAGE_STATUS_FAILED","attempt":2`)
	})
	if code, _, stderr := cli(t, "--nats", url, "retry", id, "nope"); code != exitFailed || !strings.Contains(stderr, "no stage") {
		t.Errorf("retry of an unknown stage: exit %d, %s", code, stderr)
	}
}
