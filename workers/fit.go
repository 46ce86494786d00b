package workers

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers/exec"
)

// resultHeadroom is what a result message needs besides its payload: headers (proof,
// message id, task identity) and the server's framing.
const resultHeadroom = 8 << 10

// Bounds of one result's parts; past them the rest is summarised, not sent.
const (
	maxResultFindings  = 500
	maxResultMetrics   = 200
	maxResultArtifacts = 200
	maxMessageBytes    = 4 << 10
)

// fitResult makes res fit in limit bytes, saying what it left out: a result the server
// refuses would be retried until the task runs out of deliveries, and the stage would fail
// as "no worker finished it" instead of with its own outcome. Findings go first (the stage's
// artifacts hold them all), then metrics and artifact references; a result that still does
// not fit becomes an ERROR naming the sizes.
func fitResult(res *sluicev1.Result, limit int) {
	var omitted []string
	trim := func(n int, max int, what string) int {
		if n > max {
			omitted = append(omitted, fmt.Sprintf("%d %s", n-max, what))
			return max
		}
		return n
	}
	res.Findings = res.Findings[:trim(len(res.Findings), maxResultFindings, "findings")]
	res.Metrics = res.Metrics[:trim(len(res.Metrics), maxResultMetrics, "metrics")]
	res.Artifacts = res.Artifacts[:trim(len(res.Artifacts), maxResultArtifacts, "artifact references")]
	if len(res.Message) > maxMessageBytes {
		res.Message = sluicev1.Clip(res.Message, maxMessageBytes)
	}
	for proto.Size(res) > limit && len(res.Findings) > 0 {
		keep := len(res.Findings) / 2
		omitted = append(omitted, fmt.Sprintf("%d findings", len(res.Findings)-keep))
		res.Findings = res.Findings[:keep]
	}
	if proto.Size(res) > limit {
		omitted = append(omitted, fmt.Sprintf("%d metrics", len(res.Metrics)))
		res.Metrics = nil
	}
	if len(omitted) > 0 {
		if res.Detail == nil {
			res.Detail = map[string]string{}
		}
		res.Detail["omitted"] = fmt.Sprint(omitted)
		res.Message = sluicev1.Clip(res.Message, maxMessageBytes-200) + fmt.Sprintf(" (left out of the result to fit the server's %d-byte limit: %v)", limit, omitted)
	}
	if size := proto.Size(res); size > limit {
		res.Outcome = sluicev1.Outcome_OUTCOME_ERROR
		res.Message = fmt.Sprintf("the stage's result is %d bytes even without its findings and metrics, above the server's limit of %d: shorten what it reports (detail, artifact names)", size, limit)
		res.Findings, res.Metrics, res.Artifacts, res.Verdict = nil, nil, nil, nil
		res.Detail = map[string]string{"omitted": "everything the stage reported"}
	}
}

// maskResult masks every form of the task's secrets in what the result says.
func maskResult(res *sluicev1.Result, secrets []string) {
	if len(secrets) == 0 || res == nil {
		return
	}
	m := func(s string) string { return exec.MaskString(s, secrets) }
	res.Message = m(res.GetMessage())
	for _, f := range res.GetFindings() {
		f.Message, f.Excerpt, f.File = m(f.GetMessage()), m(f.GetExcerpt()), m(f.GetFile())
		for k, v := range f.GetProperties() {
			f.Properties[k] = m(v)
		}
	}
	for _, x := range res.GetMetrics() {
		for k, v := range x.GetLabels() {
			x.Labels[k] = m(v)
		}
	}
	for k, v := range res.GetDetail() {
		res.Detail[k] = m(v)
	}
	if v := res.GetVerdict(); v != nil {
		v.Message = m(v.GetMessage())
	}
}
