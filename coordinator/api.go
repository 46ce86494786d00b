package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/coordinator/spec"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// Version is reported by the run API service.
const Version = "0.1.0"

const apiTimeout = 10 * time.Second

// serveAPI registers the run API as a NATS micro service; every coordinator joins the same
// queue group, so each request is answered once.
func (c *Coordinator) serveAPI() (micro.Service, error) {
	svc, err := micro.AddService(c.nc, micro.Config{
		Name:        "sluice-runs",
		Version:     Version,
		Description: "Sluice run API: submit, inspect and act on pipeline runs",
	})
	if err != nil {
		return nil, fmt.Errorf("register run API: %w", err)
	}
	g := svc.AddGroup(strings.TrimSuffix(c.cfg.Names.API(""), "."))
	endpoints := map[string]func(context.Context, micro.Request) (proto.Message, error){
		verbSubmit: func(ctx context.Context, r micro.Request) (proto.Message, error) {
			var req sluicev1.SubmitRunRequest
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			st, err := c.SubmitRun(ctx, &req, r.Headers().Get("traceparent"))
			return &sluicev1.SubmitRunResponse{Run: st}, err
		},
		verbGet: func(ctx context.Context, r micro.Request) (proto.Message, error) {
			var req sluicev1.GetRunRequest
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			st, err := c.GetRun(ctx, req.GetId())
			return &sluicev1.GetRunResponse{Run: st}, err
		},
		verbList: func(_ context.Context, r micro.Request) (proto.Message, error) {
			var req sluicev1.ListRunsRequest
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			return &sluicev1.ListRunsResponse{Runs: c.ListRuns(&req)}, nil
		},
		verbCancel: func(ctx context.Context, r micro.Request) (proto.Message, error) {
			var req sluicev1.CancelRunRequest
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			st, err := c.CancelRun(ctx, req.GetId(), req.GetReason())
			return &sluicev1.CancelRunResponse{Run: st}, err
		},
		verbApprove: func(ctx context.Context, r micro.Request) (proto.Message, error) {
			var req sluicev1.ApproveStageRequest
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			st, err := c.ApproveStage(ctx, req.GetId(), req.GetStage(), req.GetApprover())
			return &sluicev1.ApproveStageResponse{Run: st}, err
		},
		verbRollback: func(ctx context.Context, r micro.Request) (proto.Message, error) {
			var req sluicev1.RollbackRunRequest
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			st, err := c.RollbackRun(ctx, req.GetId(), req.GetReason(), req.GetBy())
			return &sluicev1.RollbackRunResponse{Run: st}, err
		},
	}
	for verb, fn := range endpoints {
		handler := func(r micro.Request) {
			ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
			defer cancel()
			resp, err := fn(ctx, r)
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
		if err := g.AddEndpoint(verb, micro.HandlerFunc(handler)); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("register %s: %w", verb, err)
		}
	}
	return svc, nil
}

func decode(r micro.Request, m proto.Message) error {
	if err := proto.Unmarshal(r.Data(), m); err != nil {
		return fmt.Errorf("%w: undecodable request: %v", ErrBadRequest, err)
	}
	return nil
}

var tokenRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// SubmitRun validates a submission, stores the new run and dispatches its first stages.
func (c *Coordinator) SubmitRun(ctx context.Context, req *sluicev1.SubmitRunRequest, traceparent string) (*sluicev1.RunState, error) {
	p := req.GetSpec()
	if req.GetSpecYaml() != "" {
		file := req.GetFile()
		if file == "" {
			file = "pipeline.yaml"
		}
		// The coordinator's own environment is not the submitter's: only vars substitute.
		parsed, err := spec.Parse(file, []byte(req.GetSpecYaml()), req.GetVars(), func(string) (string, bool) { return "", false })
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		p = parsed
	}
	if err := checkSpec(p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if traceparent == "" {
		traceparent = newTraceparent()
	}
	now := c.now()
	id := NewRunID(now)
	st := NewRun(id, p, req, traceparent, now)
	return c.call(ctx, work{run: id, in: Start{}, create: st})
}

// checkSpec guards the invariants the decisions rely on, for specs parsed elsewhere.
func checkSpec(p *sluicev1.PipelineSpec) error {
	if p == nil || len(p.GetStages()) == 0 {
		return errors.New("the pipeline has no stages")
	}
	if !tokenRe.MatchString(p.GetName()) {
		return fmt.Errorf("pipeline name %q must be letters, digits, - or _", p.GetName())
	}
	for _, s := range p.GetStages() {
		if !tokenRe.MatchString(s.GetName()) {
			return fmt.Errorf("stage name %q must be letters, digits, - or _", s.GetName())
		}
		if s.GetKind() == sluicev1.StageKind_STAGE_KIND_UNSPECIFIED {
			return fmt.Errorf("stage %s has no kind", s.GetName())
		}
	}
	if _, err := spec.TopoOrder(p); err != nil {
		return err
	}
	return nil
}

// NewRunID returns a time-ordered, subject-safe run id.
func NewRunID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return strconv.FormatInt(now.UnixMilli(), 36) + hex.EncodeToString(b[:])
}

func newTraceparent() string {
	var trace [16]byte
	var span [8]byte
	_, _ = rand.Read(trace[:])
	_, _ = rand.Read(span[:])
	return "00-" + hex.EncodeToString(trace[:]) + "-" + hex.EncodeToString(span[:]) + "-01"
}

// GetRun returns a run's state.
func (c *Coordinator) GetRun(ctx context.Context, id string) (*sluicev1.RunState, error) {
	if !tokenRe.MatchString(id) {
		return nil, fmt.Errorf("%w: run %q (run ids are letters and digits; see `sluice runs list`)", ErrNotFound, id)
	}
	if st, _, ok := c.cache.get(id); ok {
		return st, nil
	}
	st, _, err := c.load(ctx, id, nil)
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

// CancelRun cancels a run.
func (c *Coordinator) CancelRun(ctx context.Context, id, reason string) (*sluicev1.RunState, error) {
	if _, err := c.GetRun(ctx, id); err != nil {
		return nil, err
	}
	return c.call(ctx, work{run: id, in: CancelIn{Reason: reason}})
}

// ApproveStage releases a stage waiting for approval (or pre-approves a pending one).
func (c *Coordinator) ApproveStage(ctx context.Context, id, stage, by string) (*sluicev1.RunState, error) {
	if _, err := c.GetRun(ctx, id); err != nil {
		return nil, err
	}
	return c.call(ctx, work{run: id, in: ApproveIn{Stage: stage, By: by}})
}

// RollbackRun sends the canary traffic of the run's rollouts in progress back to stable.
func (c *Coordinator) RollbackRun(ctx context.Context, id, reason, by string) (*sluicev1.RunState, error) {
	if _, err := c.GetRun(ctx, id); err != nil {
		return nil, err
	}
	return c.call(ctx, work{run: id, in: RollbackIn{Reason: reason, By: by}})
}
