package bus

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

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
func (n Names) WorkersBucket() string  { return n.Prefix + "_workers" }
func (n Names) SourcesStore() string   { return n.Prefix + "_sources" }
func (n Names) ArtifactsStore() string { return n.Prefix + "_artifacts" }

// WorkerKey is a worker's heartbeat key in WorkersBucket: <kind>.<user>.<id>.
func (n Names) WorkerKey(kind, user, id string) string { return kind + "." + user + "." + id }

// RunKey is the subject a run's state is written on (the KV put subject of RunsBucket).
func (n Names) RunKey(run string) string { return "$KV." + n.RunsBucket() + "." + run }

// SecretsBucket holds the coordinators' shared secrets (the lease key); only coordinators
// may read it.
func (n Names) SecretsBucket() string { return n.Prefix + "_secrets" }

// KVStream and ObjectStream are the streams behind a KV bucket and an object store, which
// permissions name.
func KVStream(bucket string) string     { return "KV_" + bucket }
func ObjectStream(bucket string) string { return "OBJ_" + bucket }

// Subjects.

// Task is the subject of one task: <prefix>.task.<kind>.<pool>.<run>.
func (n Names) Task(kind, pool, run string) string {
	return n.Prefix + ".task." + kind + "." + pool + "." + run
}

// TaskFilter matches every task of one (kind, pool).
func (n Names) TaskFilter(kind, pool string) string {
	return fmt.Sprintf("%s.task.%s.%s.>", n.Prefix, kind, pool)
}

// ParseTaskFilter is TaskFilter's inverse: the kind and pool a worker consumer's filter
// names.
func (n Names) ParseTaskFilter(filter string) (kind, pool string, ok bool) {
	rest, ok := strings.CutPrefix(filter, n.Prefix+".task.")
	if !ok {
		return "", "", false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 || parts[2] != ">" || parts[0] == "" || parts[1] == "" {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// RunTasks matches every queued task of one run, for the cancel purge.
func (n Names) RunTasks(run string) string { return fmt.Sprintf("%s.task.*.*.%s", n.Prefix, run) }

// AllTasks matches every task subject.
func (n Names) AllTasks() string { return n.Prefix + ".task.>" }

// Result is where id publishes results of run: <prefix>.result.<run>.<role>.<name>. The
// server lets a worker publish only under its own role and name, so the subject names the
// publisher of every result, forged ones included.
func (n Names) Result(run string, id Identity) string {
	return n.Prefix + ".result." + run + "." + id.Role + "." + id.Name
}

// RunResults matches every result of one run.
func (n Names) RunResults(run string) string { return n.Prefix + ".result." + run + ".>" }

// AllResults matches every result subject.
func (n Names) AllResults() string { return n.Prefix + ".result.>" }

// ParseResult reads the run and the publisher out of a result subject.
func (n Names) ParseResult(subject string) (run string, publisher Identity, ok bool) {
	rest, ok := strings.CutPrefix(subject, n.Prefix+".result.")
	if !ok {
		return "", Identity{}, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return "", Identity{}, false
	}
	return parts[0], Identity{Role: parts[1], Name: parts[2]}, true
}

// Event is <prefix>.event.<pipeline>.<run>.<type>; type may hold dots ("stage.passed").
func (n Names) Event(pipeline, run, typ string) string {
	return n.Prefix + ".event." + pipeline + "." + run + "." + typ
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
	return n.Prefix + ".log." + run + "." + stage
}
func (n Names) AllLogs() string { return n.Prefix + ".log.>" }

func (n Names) Cancel(run string) string { return n.Prefix + ".control.cancel." + run }
func (n Names) AllCancels() string       { return n.Prefix + ".control.cancel.*" }

// API is where id calls one run API verb: <prefix>.api.runs.<verb>.<role>.<name>. The
// server lets a user publish only under its own role and name, so the coordinator reads the
// caller from the subject.
func (n Names) API(verb string, id Identity) string {
	return n.Prefix + ".api.runs." + verb + "." + id.Role + "." + id.Name
}

// APIEndpoint matches every caller of one verb, for the coordinators' service endpoints.
func (n Names) APIEndpoint(verb string) string { return n.Prefix + ".api.runs." + verb + ".>" }

// APIGroup is the subject prefix of the run API.
func (n Names) APIGroup() string { return n.Prefix + ".api.runs" }

// ParseAPI reads the verb and the caller out of a run API subject.
func (n Names) ParseAPI(subject string) (verb string, caller Identity, ok bool) {
	rest, ok := strings.CutPrefix(subject, n.APIGroup()+".")
	if !ok {
		return "", Identity{}, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return "", Identity{}, false
	}
	return parts[0], Identity{Role: parts[1], Name: parts[2]}, true
}

// NotifyConsumer is the events consumer of a user's `sluice notify` (shared by every
// notifier with that user's credentials).
func (n Names) NotifyConsumer(user string) string { return "notify-" + user }

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
	id := run + "/" + stage + "/" + strconv.Itoa(int(attempt))
	if shardCount > 1 {
		id += "/" + strconv.Itoa(int(shard))
	}
	return id
}

// TaskID is the Nats-Msg-Id of a task: TaskMsgID, plus /r<seq> for a rollout action (the
// actions of one rollout share the stage's attempt).
func TaskID(t *sluicev1.Task) string {
	id := TaskMsgID(t.GetRunId(), t.GetStage(), t.GetAttempt(), t.GetShardIndex(), t.GetShardCount())
	if seq := t.GetRollout().GetSeq(); seq > 0 {
		id += "/r" + strconv.Itoa(int(seq))
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
	// HeaderProof carries a result's proof of holding its task: see Prove.
	HeaderProof = "Sluice-Proof"
)

// TaskHeader is a fresh header naming t's run, stage, attempt and shard, with its
// traceparent, made with room for extra more.
func TaskHeader(t *sluicev1.Task, extra int) nats.Header {
	h := make(nats.Header, 5+extra)
	h.Set(HeaderRun, t.GetRunId())
	h.Set(HeaderStage, t.GetStage())
	h.Set(HeaderAttempt, strconv.Itoa(int(t.GetAttempt())))
	h.Set(HeaderShard, strconv.Itoa(int(t.GetShardIndex())))
	if tp := t.GetTraceparent(); tp != "" {
		h.Set(HeaderTraceparent, tp)
	}
	return h
}

// ObjectDigest renders an object store digest ("SHA-256=<base64url>") as the
// "sha256:<hex>" form results and source bundles use; another form is returned as it is.
func ObjectDigest(d string) string {
	b64, ok := strings.CutPrefix(d, "SHA-256=")
	if !ok {
		return d
	}
	sum, err := base64.URLEncoding.DecodeString(b64)
	if err != nil {
		return d
	}
	return "sha256:" + hex.EncodeToString(sum)
}
