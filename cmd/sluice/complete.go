package main

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// completionTimeout bounds what completing an argument may wait for the fleet: a shell that
// hangs on Tab is worse than one that offers nothing.
const completionTimeout = 2 * time.Second

// completeRun completes a command's first argument with the ids of recent runs (described by
// pipeline and status), from the fleet the command's flags name.
func completeRun(a *app) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return completeRuns(cmd, a, toComplete)
	}
}

// completeRunThenStage completes a run id, then one of that run's stages.
func completeRunThenStage(a *app) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		switch len(args) {
		case 0:
			return completeRuns(cmd, a, toComplete)
		case 1:
			return completeStages(cmd, a, args[0], toComplete)
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}

func completionConn(cmd *cobra.Command, a *app) (*conn, context.Context, context.CancelFunc, bool) {
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	c, err := a.connect(ctx, "sluice completion")
	if err != nil {
		cancel()
		return nil, nil, nil, false
	}
	return c, ctx, cancel, true
}

func completeRuns(cmd *cobra.Command, a *app, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
	c, ctx, cancel, ok := completionConn(cmd, a)
	if !ok {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer cancel()
	defer c.Close()
	runs, err := c.api.List(ctx, &sluicev1.ListRunsRequest{Limit: 100})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, r := range runs {
		if strings.HasPrefix(r.GetId(), prefix) {
			out = append(out, cobra.CompletionWithDesc(r.GetId(), r.GetPipeline()+" "+r.GetStatus().Short()))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func completeStages(cmd *cobra.Command, a *app, run, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
	c, ctx, cancel, ok := completionConn(cmd, a)
	if !ok {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer cancel()
	defer c.Close()
	st, err := c.api.Get(ctx, run)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, s := range st.GetStages() {
		if strings.HasPrefix(s.GetName(), prefix) {
			out = append(out, cobra.CompletionWithDesc(s.GetName(), s.GetStatus().Short()))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
