package decide

import (
	"google.golang.org/protobuf/types/known/durationpb"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// TasksFor rebuilds the tasks of stage i's current attempt from the state alone, so a
// restarted coordinator can republish them (the tasks stream drops duplicates by id). Held
// shards have none yet. st must pass Validate.
func TasksFor(st *sluicev1.RunState, i int) []*sluicev1.Task {
	s := st.GetStages()[i]
	spec := st.GetSpec().GetStages()[i]
	shards := max(spec.GetShards(), 1)
	var action *sluicev1.RolloutTask
	if s.GetRollout() != nil {
		if action = rolloutTask(spec, s.GetRollout()); action == nil {
			return nil
		}
		shards = 1
	}
	env := make(map[string]string, len(st.GetSpec().GetEnv())+len(spec.GetEnv()))
	for k, v := range st.GetSpec().GetEnv() {
		env[k] = v
	}
	for k, v := range spec.GetEnv() {
		env[k] = v
	}
	tasks := make([]*sluicev1.Task, 0, shards)
	for k := range shards {
		if k < int32(len(s.GetShards())) && s.GetShards()[k].GetHeld() {
			continue
		}
		tasks = append(tasks, &sluicev1.Task{
			RunId:        st.GetId(),
			Pipeline:     st.GetPipeline(),
			Stage:        s.GetName(),
			Kind:         spec.GetKind(),
			Pool:         poolOf(spec),
			Attempt:      s.GetAttempt(),
			ShardIndex:   k,
			ShardCount:   shards,
			Spec:         spec,
			Env:          env,
			SourceDigest: st.GetSourceDigest(),
			Ref:          st.GetRef(),
			RefProtected: st.GetRefProtected(),
			Timeout:      spec.GetTimeout(),
			DispatchedAt: s.GetQueuedAt(),
			Traceparent:  st.GetTraceparent(),
			Rollout:      action,
		})
	}
	if action != nil && len(tasks) > 0 {
		tasks[0].Timeout = durationpb.New(actionTimeout(spec, action))
	}
	return tasks
}

func poolOf(spec *sluicev1.StageSpec) string {
	if spec.GetPool() == "" {
		return "default"
	}
	return spec.GetPool()
}
