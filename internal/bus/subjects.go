package bus

import (
	"fmt"
	"strings"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// DefaultPrefix is the subject and resource prefix when none is configured.
const DefaultPrefix = "sluice"

// Names derives every subject, stream, consumer, bucket and message id from one prefix, so
// several Sluice installations can share a NATS account.
type Names struct {
	Prefix string
}

// NewNames returns the names for prefix (DefaultPrefix when empty).
func NewNames(prefix string) Names {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return Names{Prefix: prefix}
}

func (n Names) upper() string { return strings.ToUpper(strings.ReplaceAll(n.Prefix, "-", "_")) }

// Streams.

func (n Names) TasksStream() string    { return n.upper() + "_TASKS" }
func (n Names) ResultsStream() string  { return n.upper() + "_RESULTS" }
func (n Names) EventsStream() string   { return n.upper() + "_EVENTS" }
func (n Names) LogsStream() string     { return n.upper() + "_LOGS" }
func (n Names) AdvisoryStream() string { return n.upper() + "_ADVISORIES" }

// Buckets.

func (n Names) RunsBucket() string     { return n.Prefix + "_runs" }
func (n Names) TimingsBucket() string  { return n.Prefix + "_timings" }
func (n Names) LocksBucket() string    { return n.Prefix + "_locks" }
func (n Names) SourcesStore() string   { return n.Prefix + "_sources" }
func (n Names) ArtifactsStore() string { return n.Prefix + "_artifacts" }

// Subjects.

// Task is the subject of one task: <prefix>.task.<kind>.<pool>.<run>.
func (n Names) Task(kind, pool, run string) string {
	return fmt.Sprintf("%s.task.%s.%s.%s", n.Prefix, kind, pool, run)
}

// TaskFilter matches every task of one (kind, pool).
func (n Names) TaskFilter(kind, pool string) string {
	return fmt.Sprintf("%s.task.%s.%s.>", n.Prefix, kind, pool)
}

// RunTasks matches every queued task of one run, for the cancel purge.
func (n Names) RunTasks(run string) string { return fmt.Sprintf("%s.task.*.*.%s", n.Prefix, run) }

// AllTasks matches every task subject.
func (n Names) AllTasks() string { return n.Prefix + ".task.>" }

func (n Names) Result(run string) string { return n.Prefix + ".result." + run }
func (n Names) AllResults() string       { return n.Prefix + ".result.>" }

// Event is <prefix>.event.<pipeline>.<run>.<type>; type may hold dots ("stage.passed").
func (n Names) Event(pipeline, run, typ string) string {
	return fmt.Sprintf("%s.event.%s.%s.%s", n.Prefix, pipeline, run, typ)
}

// EventFilter matches events by pipeline and run; empty parts match anything.
func (n Names) EventFilter(pipeline, run string) string {
	if pipeline == "" {
		pipeline = "*"
	}
	if run == "" {
		run = "*"
	}
	return fmt.Sprintf("%s.event.%s.%s.>", n.Prefix, pipeline, run)
}

// AllEvents matches every event subject.
func (n Names) AllEvents() string { return n.Prefix + ".event.>" }

func (n Names) Log(run, stage string) string {
	return fmt.Sprintf("%s.log.%s.%s", n.Prefix, run, stage)
}
func (n Names) AllLogs() string { return n.Prefix + ".log.>" }

func (n Names) Cancel(run string) string { return n.Prefix + ".control.cancel." + run }
func (n Names) AllCancels() string       { return n.Prefix + ".control.cancel.*" }

// API is the request subject of one run API verb: <prefix>.api.runs.<verb>.
func (n Names) API(verb string) string { return n.Prefix + ".api.runs." + verb }

// WorkerConsumer is the durable pull consumer shared by every worker of (kind, pool).
func (n Names) WorkerConsumer(kind, pool string) string {
	return "workers_" + kind + "_" + pool
}

// CoordinatorConsumer is the durable consumer the coordinators share on the results stream.
func (n Names) CoordinatorConsumer() string { return "coordinator" }

// MaxDeliveriesAdvisory is the server advisory published when a task exhausts MaxDeliver.
func (n Names) MaxDeliveriesAdvisory() string {
	return "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + n.TasksStream() + ".*"
}

// Message ids (Nats-Msg-Id) make re-publishes after a crash idempotent.

// TaskMsgID is <run>/<stage>/<attempt>[/<shard>]; the shard is present when shardCount > 1.
func TaskMsgID(run, stage string, attempt, shard, shardCount int32) string {
	if shardCount > 1 {
		return fmt.Sprintf("%s/%s/%d/%d", run, stage, attempt, shard)
	}
	return fmt.Sprintf("%s/%s/%d", run, stage, attempt)
}

// TaskID is the Nats-Msg-Id of a task: TaskMsgID, plus /r<seq> for a rollout action (the
// actions of one rollout share the stage's attempt).
func TaskID(t *sluicev1.Task) string {
	id := TaskMsgID(t.GetRunId(), t.GetStage(), t.GetAttempt(), t.GetShardIndex(), t.GetShardCount())
	if seq := t.GetRollout().GetSeq(); seq > 0 {
		id += fmt.Sprintf("/r%d", seq)
	}
	return id
}

// ResultMsgID is the task's id plus the phase ("started" or "final").
func ResultMsgID(taskID, phase string) string { return taskID + "/" + phase }

// Headers Sluice sets beside Nats-Msg-Id, so a message can be routed without decoding it
// (the max-deliveries advisory names only a stream sequence).
const (
	HeaderRun         = "Sluice-Run"
	HeaderStage       = "Sluice-Stage"
	HeaderAttempt     = "Sluice-Attempt"
	HeaderShard       = "Sluice-Shard"
	HeaderTraceparent = "traceparent"
)
