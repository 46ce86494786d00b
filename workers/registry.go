package workers

import (
	"context"
	"sync"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// Handler runs one task of a kind and reports its outcome. The runtime fills the Result's
// identity fields (run, stage, attempt, shard, phase, worker, delivery, times); a handler
// sets the outcome, message, exit code, findings, metrics and artifacts. A nil Result is
// reported as an ERROR.
type Handler interface {
	Handle(ctx context.Context, t *Task) *sluicev1.Result
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, t *Task) *sluicev1.Result

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, t *Task) *sluicev1.Result { return f(ctx, t) }

// Registry maps each stage kind to the Handler that runs its tasks. It is safe for
// concurrent use.
type Registry struct {
	mu       sync.RWMutex
	handlers map[sluicev1.StageKind]Handler
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{handlers: make(map[sluicev1.StageKind]Handler)}
}

// DefaultRegistry registers RunHandler for every kind of sluicev1.AllKinds; a kind's engine
// replaces its entry with Register.
func DefaultRegistry() *Registry {
	r := NewRegistry()
	for _, k := range sluicev1.AllKinds() {
		r.Register(k, RunHandler{})
	}
	return r
}

// Register sets the handler of kind, replacing any earlier one.
func (r *Registry) Register(kind sluicev1.StageKind, h Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handlers[kind] = h
}

// Handler returns the handler of kind.
func (r *Registry) Handler(kind sluicev1.StageKind) (Handler, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	h, ok := r.handlers[kind]
	return h, ok
}

// RunHandler is the generic handler: it runs the stage's `run:` steps in order. A stage
// that also configures a kind's engine (governance:, contract:, ...) is an ERROR, not a
// silent pass: the gate it asks for would not be checked.
type RunHandler struct{}

// Handle runs t's `run:` steps.
func (RunHandler) Handle(ctx context.Context, t *Task) *sluicev1.Result {
	if name := engineConfig(t.Task.GetSpec()); name != "" {
		return &sluicev1.Result{
			Outcome: sluicev1.Outcome_OUTCOME_ERROR,
			Message: "stage configures `" + name + ":` but this worker's " + t.Task.GetKind().Slug() +
				" handler runs only `run:` steps (the " + name + " engine is not available)",
		}
	}
	return t.RunSteps(ctx, t.Task.GetSpec().GetRun())
}

// engineConfig names the engine block a stage sets, or "".
func engineConfig(s *sluicev1.StageSpec) string {
	switch {
	case s.GetGovernance() != nil:
		return "governance"
	case s.GetWarnings() != nil:
		return "warnings"
	case s.GetContract() != nil:
		return "contract"
	case s.GetBackupVerify() != nil:
		return "backup_verify"
	case s.GetE2E() != nil:
		return "e2e"
	case s.GetLoad() != nil:
		return "load"
	case s.GetRollout() != nil:
		return "rollout"
	}
	return ""
}
