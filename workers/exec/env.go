package exec

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// EnvConfig is what the worker contributes to a task's environment.
type EnvConfig struct {
	Path   string // the worker's PATH, so steps find the same tools the worker does
	Home   string // a per-task directory
	TmpDir string // a per-task directory
	// CacheHome is the worker's XDG_CACHE_HOME, kept across tasks so tool caches (Go's
	// build cache, pip, ...) stay warm; empty: not set. Those caches are content-addressed
	// and safe to share between tasks. Go's module cache, which lives under HOME by
	// default, is put there too (GOMODCACHE), so a task does not download every module
	// again.
	CacheHome string
	// Secrets are the values the worker granted the task, by name.
	Secrets map[string]string
}

// TaskEnv builds the clean environment of t's steps: PATH, HOME, LANG=C.UTF-8, TMPDIR and
// XDG_CACHE_HOME with Go's GOCACHE and GOMODCACHE in it, overridden by the pipeline env
// and then the stage env, then the stage's secrets as the
// worker granted them, then the SLUICE_* task variables, which nothing overrides. Nothing
// else of the worker's environment leaks. It also returns every granted value, for
// redaction. A stage secret without a grant is named in an error wrapping ErrMissingSecret.
func TaskEnv(t *sluicev1.Task, c EnvConfig) (env, secrets []string, err error) {
	vars := map[string]string{
		"PATH":   c.Path,
		"HOME":   c.Home,
		"LANG":   "C.UTF-8",
		"TMPDIR": c.TmpDir,
	}
	if c.CacheHome != "" {
		vars["XDG_CACHE_HOME"] = c.CacheHome
		// GOCACHE is Go's own default under XDG_CACHE_HOME; set, it is plain to see.
		vars["GOCACHE"] = filepath.Join(c.CacheHome, "go-build")
		vars["GOMODCACHE"] = filepath.Join(c.CacheHome, "go-mod")
	}
	for k, v := range t.GetEnv() {
		vars[k] = v
	}
	for k, v := range t.GetSpec().GetEnv() {
		vars[k] = v
	}
	var missing []string
	for _, name := range t.GetSpec().GetSecrets() {
		v, ok := c.Secrets[name]
		if !ok {
			missing = append(missing, name)
			continue
		}
		vars[name] = v
	}
	for _, v := range c.Secrets {
		secrets = append(secrets, v)
	}
	sort.Strings(secrets)
	if len(missing) > 0 {
		return nil, nil, fmt.Errorf("%w: %s not granted to the task", ErrMissingSecret, strings.Join(missing, ", "))
	}
	vars["SLUICE_RUN_ID"] = t.GetRunId()
	vars["SLUICE_STAGE"] = t.GetStage()
	vars["SLUICE_ATTEMPT"] = strconv.Itoa(int(t.GetAttempt()))
	vars["SLUICE_SHARD_INDEX"] = strconv.Itoa(int(t.GetShardIndex()))
	vars["SLUICE_SHARD_COUNT"] = strconv.Itoa(int(max(t.GetShardCount(), 1)))
	vars["SLUICE_PIPELINE"] = t.GetPipeline()
	vars["SLUICE_REF"] = t.GetRef()
	if tp := t.GetTraceparent(); tp != "" {
		// W3C trace context, as OpenTelemetry's env carriers read it: a step's spans join the
		// task's span in the run's trace.
		vars["TRACEPARENT"] = tp
	}

	env = make([]string, 0, len(vars))
	for k, v := range vars {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return nil, nil, fmt.Errorf("%w: %q", ErrBadEnv, k)
		}
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env, secrets, nil
}
