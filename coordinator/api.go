package coordinator

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/coordinator/decide"
	"github.com/sluice-ci/sluice/coordinator/spec"
	"github.com/sluice-ci/sluice/internal/auth"
	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/version"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

const apiTimeout = 10 * time.Second

// How many requests the run API answers at once. A request waits for its run's lane (a
// submission for its state's write and first tasks): answered one at a time, the API
// bounded a fleet's submissions to one lane round trip each. Submissions are bounded
// closer to the cores: beyond what the CPUs decide at once, a run decided early only waits
// longer for a worker, so the wait is better spent before the decision than after it (on
// two cores, 1-stage runs at 100 in flight dispatch in a third of the time at 4 than at
// 256, at the same throughput).
var submitConcurrency = max(4, 2*runtime.GOMAXPROCS(0))

const apiConcurrency = 64

// requests answers the API's requests each on its own goroutine, at most a bound at once:
// beyond that the subscription's callback waits, and the server's pending limits push back
// on the callers.
type requests struct {
	slots  chan struct{}
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func newRequests(n int) *requests { return &requests{slots: make(chan struct{}, n)} }

// do runs f on a goroutine of its own; false, without running it, once close was called.
func (q *requests) do(f func()) bool {
	q.slots <- struct{}{}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		<-q.slots
		return false
	}
	q.wg.Add(1)
	q.mu.Unlock()
	go func() {
		defer q.wg.Done()
		defer func() { <-q.slots }()
		f()
	}()
	return true
}

// close refuses further requests and waits for those under way.
func (q *requests) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.wg.Wait()
}

// Caller is who called the run API: an authenticated principal, or an anonymous one on a
// fleet without authentication, whose name is only claimed.
type Caller struct {
	Role      auth.Role
	Name      string
	Anonymous bool
}

// Principal is "role:name"; "anonymous:<claimed name>" for an anonymous caller.
func (c Caller) Principal() string {
	if c.Anonymous {
		return bus.AnonymousRole + ":" + c.Name
	}
	return auth.Principal(c.Role, c.Name)
}

// may checks that the caller's role may call verb. Anonymous callers may call every verb:
// a fleet without authentication cannot tell them apart (and warns about it at start).
func (c Caller) may(verb auth.Verb) error {
	if c.Anonymous || c.Role.Allows(verb) {
		return nil
	}
	return fmt.Errorf("%w: %s may not %s (roles allowed: %s)", ErrForbidden, c.Principal(), verb, strings.Join(auth.RolesAllowed(verb), ", "))
}

// serveAPI registers the run API as a NATS micro service; every coordinator joins the same
// queue group, so each request is answered once. Each verb listens on
// <prefix>.api.runs.<verb>.<role>.<name>, where the server lets a user publish only under
// its own role and name.
func (c *Coordinator) serveAPI(ctx context.Context) (stop func(), err error) {
	svc, err := micro.AddService(c.nc, micro.Config{
		Name:        "sluice-runs",
		Version:     version.String(),
		Description: "Sluice run API: submit, inspect and act on pipeline runs",
	})
	if err != nil {
		return nil, fmt.Errorf("register run API: %w", err)
	}
	submits, others := newRequests(submitConcurrency), newRequests(apiConcurrency)
	stop = func() {
		_ = svc.Stop()
		submits.close()
		others.close()
	}
	endpoints := map[auth.Verb]func(context.Context, Caller, micro.Request) (proto.Message, error){
		auth.VerbSubmit: func(ctx context.Context, who Caller, r micro.Request) (proto.Message, error) {
			var req sluicev1.SubmitRunRequest
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			st, err := c.SubmitRun(ctx, who, &req, r.Headers().Get("traceparent"))
			return &sluicev1.SubmitRunResponse{Run: st}, err
		},
		auth.VerbGet: func(ctx context.Context, _ Caller, r micro.Request) (proto.Message, error) {
			var req sluicev1.GetRunRequest
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			st, err := c.GetRun(ctx, req.GetId())
			return &sluicev1.GetRunResponse{Run: st}, err
		},
		auth.VerbList: func(_ context.Context, _ Caller, r micro.Request) (proto.Message, error) {
			var req sluicev1.ListRunsRequest
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			return &sluicev1.ListRunsResponse{Runs: c.ListRuns(&req)}, nil
		},
		auth.VerbCancel: func(ctx context.Context, who Caller, r micro.Request) (proto.Message, error) {
			var req sluicev1.CancelRunRequest
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			st, err := c.CancelRun(ctx, who, req.GetId(), req.GetReason())
			return &sluicev1.CancelRunResponse{Run: st}, err
		},
		auth.VerbApprove: func(ctx context.Context, who Caller, r micro.Request) (proto.Message, error) {
			var req sluicev1.ApproveStageRequest
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			st, err := c.ApproveStage(ctx, who, req.GetId(), req.GetStage())
			return &sluicev1.ApproveStageResponse{Run: st}, err
		},
		auth.VerbRollback: func(ctx context.Context, who Caller, r micro.Request) (proto.Message, error) {
			var req sluicev1.RollbackRunRequest
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			st, err := c.RollbackRun(ctx, who, req.GetId(), req.GetReason())
			return &sluicev1.RollbackRunResponse{Run: st}, err
		},
		auth.VerbRollout: func(ctx context.Context, who Caller, r micro.Request) (proto.Message, error) {
			var req sluicev1.RolloutRequest
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			st, err := c.Rollout(ctx, who, &req)
			return &sluicev1.RolloutResponse{Run: st}, err
		},
		auth.VerbRetry: func(ctx context.Context, who Caller, r micro.Request) (proto.Message, error) {
			var req sluicev1.RetryStageRequest
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			st, err := c.RetryStage(ctx, who, req.GetId(), req.GetStage())
			return &sluicev1.RetryStageResponse{Run: st}, err
		},
	}
	for verb, fn := range endpoints {
		reqs := others
		if verb == auth.VerbSubmit {
			reqs = submits
		}
		answer := func(r micro.Request) {
			ctx, cancel := context.WithTimeout(ctx, apiTimeout)
			defer cancel()
			who, err := c.caller(r.Subject(), verb)
			var resp proto.Message
			if err == nil {
				resp, err = fn(ctx, who, r)
			}
			if err != nil {
				_ = r.Error(strconv.Itoa(errorCode(err)), err.Error(), nil)
				return
			}
			data, err := proto.Marshal(resp)
			if err != nil {
				_ = r.Error("500", err.Error(), nil)
				return
			}
			_ = r.Respond(data)
		}
		handler := func(r micro.Request) {
			// Clients ask from their inbox. A message with any other reply subject was
			// published by the server on someone's behalf (a JetStream delivery or API
			// response aimed at this subject): it speaks for nobody and gets no answer.
			if !strings.HasPrefix(r.Reply(), "_INBOX.") {
				c.log.Warn("run API message without an inbox reply dropped", "subject", r.Subject(), "reply", r.Reply())
				return
			}
			if !reqs.do(func() { answer(r) }) {
				err := fmt.Errorf("%w: this coordinator is stopping; ask again", ErrNoCoordinator)
				_ = r.Error(strconv.Itoa(errorCode(err)), err.Error(), nil)
			}
		}
		if err := svc.AddEndpoint(string(verb), micro.HandlerFunc(handler), micro.WithEndpointSubject(c.cfg.Names.APIEndpoint(string(verb)))); err != nil {
			stop()
			return nil, fmt.Errorf("register %s: %w", verb, err)
		}
	}
	return stop, nil
}

// caller reads who sent a request from its subject and checks the role may call verb.
func (c *Coordinator) caller(subject string, verb auth.Verb) (Caller, error) {
	_, id, ok := c.cfg.Names.ParseAPI(subject)
	if !ok || !bus.IsToken(id.Name) {
		return Caller{}, fmt.Errorf("%w: subject %s is not <prefix>.api.runs.<verb>.<role>.<name>", ErrBadRequest, subject)
	}
	if !c.authenticated {
		return Caller{Name: id.Name, Anonymous: true}, nil
	}
	role, known := auth.ParseRole(id.Role)
	if !known {
		return Caller{}, fmt.Errorf("%w: %s is not a role of this fleet", ErrForbidden, id.Role)
	}
	who := Caller{Role: role, Name: id.Name}
	return who, who.may(verb)
}

func decode(r micro.Request, m proto.Message) error {
	if err := proto.Unmarshal(r.Data(), m); err != nil {
		return fmt.Errorf("%w: undecodable request: %v", ErrBadRequest, err)
	}
	return nil
}

var tokenRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// SubmitRun validates a submission, stores the new run and dispatches its first stages.
// Whatever path a spec came by (YAML, protobuf over NATS, HTTP), it goes through the parser
// and validator of `sluice lint`, then the limits of a run.
func (c *Coordinator) SubmitRun(ctx context.Context, who Caller, req *sluicev1.SubmitRunRequest, traceparent string) (*sluicev1.RunState, error) {
	if err := who.may(auth.VerbSubmit); err != nil {
		return nil, err
	}
	p, err := c.validSpec(req)
	if err != nil {
		return nil, err
	}
	if err := c.checkApprovers(p); err != nil {
		return nil, err
	}
	if err := checkSubmission(req); err != nil {
		return nil, err
	}
	protected, err := c.checkRef(who, req.GetRef())
	if err != nil {
		return nil, err
	}
	now := c.now()
	id := NewRunID(now)
	st := decide.NewRun(id, p, req, runTraceparent(traceparent, id, c.tracer.recording()), now)
	st.SubmittedBy = who.Principal()
	st.RefProtected = protected
	if err := c.checkStateSize(st); err != nil {
		return nil, err
	}
	return c.call(ctx, work{run: id, in: decide.Start{}, create: st})
}

// validSpec parses a YAML submission, or puts a protobuf one through the same parser.
func (c *Coordinator) validSpec(req *sluicev1.SubmitRunRequest) (*sluicev1.PipelineSpec, error) {
	file := req.GetFile()
	if req.GetSpecYaml() != "" {
		if file == "" {
			file = "pipeline.yaml"
		}
		// The coordinator's own environment is not the submitter's: only vars substitute.
		p, err := spec.Parse(file, []byte(req.GetSpecYaml()), req.GetVars(), func(string) (string, bool) { return "", false })
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		return p, nil
	}
	if req.GetSpec() == nil {
		return nil, fmt.Errorf("%w: the request has no pipeline (spec or spec_yaml)", ErrBadRequest)
	}
	p, err := c.specs.check(req.GetSpec())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return p, nil
}

// maxCheckedSpecs bounds the specs checkedSpecs remembers: a fleet runs a few pipelines
// many times over.
const maxCheckedSpecs = 256

// checkedSpecs remembers the outcome of spec.Check for specs that passed it, keyed by their
// content, so a pipeline submitted again skips the render and parse. It hands out copies: a
// run may change its own.
type checkedSpecs struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]*sluicev1.PipelineSpec
}

// check is spec.Check(p), from memory when p passed it before.
func (s *checkedSpecs) check(p *sluicev1.PipelineSpec) (*sluicev1.PipelineSpec, error) {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(p)
	if err != nil {
		return spec.Check(p)
	}
	key := sha256.Sum256(data)
	s.mu.Lock()
	kept, ok := s.m[key]
	s.mu.Unlock()
	if ok {
		return proto.Clone(kept).(*sluicev1.PipelineSpec), nil
	}
	checked, err := spec.Check(p)
	if err != nil {
		return nil, err
	}
	kept = proto.Clone(checked).(*sluicev1.PipelineSpec)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil || len(s.m) >= maxCheckedSpecs {
		s.m = make(map[[sha256.Size]byte]*sluicev1.PipelineSpec, maxCheckedSpecs)
	}
	s.m[key] = kept
	return checked, nil
}

// checkApprovers checks that every approval.by entry names a role, a principal or a group
// of the policy, so a typo cannot leave a stage that nobody may approve.
func (c *Coordinator) checkApprovers(p *sluicev1.PipelineSpec) error {
	if c.policy() == nil {
		// No policy to name groups: approvals of such stages are refused on a fleet without
		// authentication anyway, with a message that says so.
		return nil
	}
	for _, s := range p.GetStages() {
		if err := c.policy().CheckApprovers(s.GetApprovalBy()); err != nil {
			return fmt.Errorf("%w: %s: stages.%s.approval.by: %v", ErrBadRequest, p.GetFile(), s.GetName(), err)
		}
	}
	return nil
}

// Limits of a submission besides the spec's.
const (
	maxRefBytes    = 256
	maxCommitBytes = 128
	maxVars        = 256
	// stateHeadroom: a new run's state may take this share of the server's maximum payload,
	// leaving the rest for what its stages record (messages, findings, verdicts).
	stateHeadroom = 4
)

var refRe = regexp.MustCompile(`^[A-Za-z0-9._/+-]*$`)

func checkSubmission(req *sluicev1.SubmitRunRequest) error {
	switch {
	case len(req.GetRef()) > maxRefBytes || !refRe.MatchString(req.GetRef()) || strings.Contains(req.GetRef(), ".."):
		return fmt.Errorf("%w: ref %q: a branch or tag name of at most %d bytes (letters, digits, . _ / + -)", ErrBadRequest, req.GetRef(), maxRefBytes)
	case len(req.GetCommit()) > maxCommitBytes || !refRe.MatchString(req.GetCommit()):
		return fmt.Errorf("%w: commit %q is not a commit id", ErrBadRequest, req.GetCommit())
	case len(req.GetVars()) > maxVars:
		return fmt.Errorf("%w: %d vars, the limit is %d", ErrBadRequest, len(req.GetVars()), maxVars)
	case req.GetSourceDigest() != "" && !strings.HasPrefix(req.GetSourceDigest(), "sha256:"):
		return fmt.Errorf("%w: source digest %q: want sha256:<hex>", ErrBadRequest, req.GetSourceDigest())
	}
	return nil
}

// checkRef enforces the policy's protected refs: only the principals a rule names may
// submit runs for the refs it matches. It reports whether the ref is protected.
func (c *Coordinator) checkRef(who Caller, ref string) (bool, error) {
	rule, protected := c.policy().Protected(ref)
	if !protected {
		return false, nil
	}
	if who.Anonymous || !c.policy().Matches(who.Principal(), rule.Submitters) {
		return false, fmt.Errorf("%w: ref %s is protected (policy rule %q): only %s may submit runs for it, not %s",
			ErrForbidden, ref, rule.Ref, strings.Join(rule.Submitters, ", "), who.Principal())
	}
	return true, nil
}

// checkStateSize refuses a run whose state could not be stored as it grows: KV values are
// bounded by the server's maximum payload.
func (c *Coordinator) checkStateSize(st *sluicev1.RunState) error {
	limit := int(c.nc.MaxPayload()) / stateHeadroom
	if size := proto.Size(st); size > limit {
		return fmt.Errorf("%w: %s: the run's state would be %d bytes before any stage ran; the limit is %d (a quarter of the server's %d-byte max_payload): split the pipeline, or shorten its commands and env",
			ErrBadRequest, st.GetSpec().GetFile(), size, limit, c.nc.MaxPayload())
	}
	return nil
}

func (c *Coordinator) policy() *auth.Policy {
	if c.cfg.Auth == nil {
		return nil
	}
	return c.cfg.Auth.Policy
}

// NewRunID returns a time-ordered, subject-safe run id.
func NewRunID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return strconv.FormatInt(now.UnixMilli(), 36) + hex.EncodeToString(b[:])
}

// GetRun returns a run's state.
func (c *Coordinator) GetRun(ctx context.Context, id string) (*sluicev1.RunState, error) {
	if !tokenRe.MatchString(id) {
		return nil, fmt.Errorf("%w: run %q (run ids are letters and digits; see `sluice runs list`)", ErrNotFound, id)
	}
	if st, _, ok := c.cache.get(id); ok {
		return st, nil
	}
	st, _, err := c.load(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: run %s (see `sluice runs list`)", ErrNotFound, id)
	}
	return st, err
}

// ListRuns returns run summaries, newest first (50 unless limited).
func (c *Coordinator) ListRuns(req *sluicev1.ListRunsRequest) []*sluicev1.RunSummary {
	limit := int(req.GetLimit())
	if limit <= 0 {
		limit = 50
	}
	return c.cache.list(req.GetPipeline(), limit)
}

// CancelRun cancels a run, recording who did.
func (c *Coordinator) CancelRun(ctx context.Context, who Caller, id, reason string) (*sluicev1.RunState, error) {
	if err := who.may(auth.VerbCancel); err != nil {
		return nil, err
	}
	if _, err := c.GetRun(ctx, id); err != nil {
		return nil, err
	}
	return c.call(ctx, work{run: id, in: decide.CancelIn{Reason: reason, By: who.Principal()}})
}

// Rollout acts on a rollout in progress (promote, pause, resume, abort) for a caller whose
// role may, and who may approve the stage when it names its approvers.
func (c *Coordinator) Rollout(ctx context.Context, who Caller, req *sluicev1.RolloutRequest) (*sluicev1.RunState, error) {
	if err := who.may(auth.VerbRollout); err != nil {
		return nil, err
	}
	if !slices.Contains(decide.RolloutActions, req.GetAction()) {
		return nil, fmt.Errorf("%w: rollout action %q: want one of %s", ErrBadRequest, req.GetAction(), strings.Join(decide.RolloutActions, ", "))
	}
	st, err := c.GetRun(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	// Whoever may approve a rollout's steps may act on it.
	for _, s := range st.GetSpec().GetStages() {
		if s.GetRollout() != nil && (req.GetStage() == "" || req.GetStage() == s.GetName()) {
			if err := c.mayApprove(who, st, s.GetName()); err != nil {
				return nil, err
			}
		}
	}
	return c.call(ctx, work{run: req.GetId(), in: decide.RolloutCmd{Stage: req.GetStage(), Action: req.GetAction(), Reason: req.GetReason(), By: who.Principal()}})
}

// RetryStage runs a failed or cancelled stage of a finished run again, with the stages
// after it.
func (c *Coordinator) RetryStage(ctx context.Context, who Caller, id, stage string) (*sluicev1.RunState, error) {
	if err := who.may(auth.VerbRetry); err != nil {
		return nil, err
	}
	if _, err := c.GetRun(ctx, id); err != nil {
		return nil, err
	}
	return c.call(ctx, work{run: id, in: decide.RetryIn{Stage: stage, By: who.Principal()}})
}

// ApproveStage releases a stage waiting for approval, or continues its rollout, when the
// caller is one of those the stage names in approval.by.
func (c *Coordinator) ApproveStage(ctx context.Context, who Caller, id, stage string) (*sluicev1.RunState, error) {
	if err := who.may(auth.VerbApprove); err != nil {
		return nil, err
	}
	st, err := c.GetRun(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := c.mayApprove(who, st, stage); err != nil {
		return nil, err
	}
	return c.call(ctx, work{run: id, in: decide.ApproveIn{Stage: stage, By: who.Principal()}})
}

// mayApprove checks who against the approvers a stage names (approval.by), if it names any.
func (c *Coordinator) mayApprove(who Caller, st *sluicev1.RunState, stage string) error {
	for _, s := range st.GetSpec().GetStages() {
		if s.GetName() != stage || len(s.GetApprovalBy()) == 0 {
			continue
		}
		if who.Anonymous {
			return fmt.Errorf("%w: stage %s may be approved only by %s, and this fleet runs without authentication: every caller is anonymous (start it with --auth)",
				ErrForbidden, stage, strings.Join(s.GetApprovalBy(), ", "))
		}
		if !c.policy().Matches(who.Principal(), s.GetApprovalBy()) {
			return fmt.Errorf("%w: stage %s may be approved only by %s, not by %s", ErrForbidden, stage, strings.Join(s.GetApprovalBy(), ", "), who.Principal())
		}
	}
	return nil
}

// RollbackRun sends the canary traffic of the run's rollouts in progress back to stable,
// recording who asked.
func (c *Coordinator) RollbackRun(ctx context.Context, who Caller, id, reason string) (*sluicev1.RunState, error) {
	if err := who.may(auth.VerbRollback); err != nil {
		return nil, err
	}
	if _, err := c.GetRun(ctx, id); err != nil {
		return nil, err
	}
	return c.call(ctx, work{run: id, in: decide.RollbackIn{Reason: reason, By: who.Principal()}})
}
