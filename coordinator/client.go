package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/internal/auth"
	"github.com/sluice-ci/sluice/internal/bus"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// Client calls the run API over NATS request/reply, as the identity of its connection.
type Client struct {
	nc    *nats.Conn
	names bus.Names
	id    bus.Identity
}

// NewClient returns a client of the coordinators reachable through nc. It calls as the user
// of nc's credentials (anonymous without).
func NewClient(nc *nats.Conn, names bus.Names) *Client {
	return &Client{nc: nc, names: names, id: bus.IdentityOf(nc)}
}

// Identity is who the client calls as.
func (c *Client) Identity() bus.Identity { return c.id }

// Submit starts a run and returns its initial state.
func (c *Client) Submit(ctx context.Context, req *sluicev1.SubmitRunRequest) (*sluicev1.RunState, error) {
	var resp sluicev1.SubmitRunResponse
	if err := c.call(ctx, auth.VerbSubmit, req, &resp); err != nil {
		return nil, err
	}
	return resp.GetRun(), nil
}

// Get returns the state of one run.
func (c *Client) Get(ctx context.Context, id string) (*sluicev1.RunState, error) {
	var resp sluicev1.GetRunResponse
	if err := c.call(ctx, auth.VerbGet, &sluicev1.GetRunRequest{Id: id}, &resp); err != nil {
		return nil, err
	}
	return resp.GetRun(), nil
}

// List returns run summaries, newest first.
func (c *Client) List(ctx context.Context, req *sluicev1.ListRunsRequest) ([]*sluicev1.RunSummary, error) {
	var resp sluicev1.ListRunsResponse
	if err := c.call(ctx, auth.VerbList, req, &resp); err != nil {
		return nil, err
	}
	return resp.GetRuns(), nil
}

// Cancel stops a run: queued tasks are purged and running steps are killed.
func (c *Client) Cancel(ctx context.Context, id, reason string) (*sluicev1.RunState, error) {
	var resp sluicev1.CancelRunResponse
	if err := c.call(ctx, auth.VerbCancel, &sluicev1.CancelRunRequest{Id: id, Reason: reason}, &resp); err != nil {
		return nil, err
	}
	return resp.GetRun(), nil
}

// Approve releases a stage that waits for approval, as the client's principal.
func (c *Client) Approve(ctx context.Context, id, stage string) (*sluicev1.RunState, error) {
	var resp sluicev1.ApproveStageResponse
	req := &sluicev1.ApproveStageRequest{Id: id, Stage: stage}
	if err := c.call(ctx, auth.VerbApprove, req, &resp); err != nil {
		return nil, err
	}
	return resp.GetRun(), nil
}

// Rollback sends the canary traffic of the run's rollouts in progress back to stable.
func (c *Client) Rollback(ctx context.Context, id, reason string) (*sluicev1.RunState, error) {
	var resp sluicev1.RollbackRunResponse
	if err := c.call(ctx, auth.VerbRollback, &sluicev1.RollbackRunRequest{Id: id, Reason: reason}, &resp); err != nil {
		return nil, err
	}
	return resp.GetRun(), nil
}

// Rollout acts on a rollout in progress: action is promote, pause, resume or abort; stage
// "" names the run's only rollout in progress.
func (c *Client) Rollout(ctx context.Context, id, stage, action, reason string) (*sluicev1.RunState, error) {
	var resp sluicev1.RolloutResponse
	if err := c.call(ctx, auth.VerbRollout, &sluicev1.RolloutRequest{Id: id, Stage: stage, Action: action, Reason: reason}, &resp); err != nil {
		return nil, err
	}
	return resp.GetRun(), nil
}

// Retry runs a failed or cancelled stage of a finished run again.
func (c *Client) Retry(ctx context.Context, id, stage string) (*sluicev1.RunState, error) {
	var resp sluicev1.RetryStageResponse
	if err := c.call(ctx, auth.VerbRetry, &sluicev1.RetryStageRequest{Id: id, Stage: stage}, &resp); err != nil {
		return nil, err
	}
	return resp.GetRun(), nil
}

func (c *Client) call(ctx context.Context, verb auth.Verb, req, resp proto.Message) error {
	data, err := proto.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode %s request: %w", verb, err)
	}
	subject := c.names.API(string(verb), c.id)
	msg, err := c.nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("%s: %w on %s (start one with `sluice dev` or `sluice coordinator`)", verb, ErrNoCoordinator, subject)
		}
		return fmt.Errorf("%s: %w", verb, err)
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		desc := msg.Header.Get(micro.ErrorHeader)
		n, _ := strconv.Atoi(code)
		sentinel := codeError(n)
		// The description is the coordinator's error text, which starts with the sentinel.
		return fmt.Errorf("%w: %s", sentinel, strings.TrimPrefix(desc, sentinel.Error()+": "))
	}
	if err := proto.Unmarshal(msg.Data, resp); err != nil {
		return fmt.Errorf("decode %s reply: %w", verb, err)
	}
	return nil
}

func codeError(code int) error {
	switch code {
	case 400:
		return ErrBadRequest
	case 404:
		return ErrNotFound
	case 409:
		return ErrConflict
	case 403:
		return ErrForbidden
	case 503:
		return ErrNoCoordinator
	}
	return errors.New("coordinator error")
}

// errorCode is the inverse of codeError, for replies.
func errorCode(err error) int {
	switch {
	case errors.Is(err, ErrBadRequest):
		return 400
	case errors.Is(err, ErrNotFound):
		return 404
	case errors.Is(err, ErrConflict):
		return 409
	case errors.Is(err, ErrForbidden):
		return 403
	case errors.Is(err, ErrNoCoordinator):
		return 503
	}
	return 500
}
