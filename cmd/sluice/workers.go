package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/internal/bus"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

func newWorkersCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "workers",
		Short: "See the fleet's live workers",
		Long: `See which workers the fleet has now: each worker keeps a heartbeat per kind in the
workers bucket while it runs, with its pool, slots and tasks in flight.`,
		Example: `  sluice workers list
  sluice workers list --kind test`,
		Args: noArgs,
		RunE: showHelp,
	}
	cmd.AddCommand(newWorkersListCmd(a))
	return cmd
}

func newWorkersListCmd(a *app) *cobra.Command {
	var (
		out  output
		kind string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List live workers: kind, pool, slots, tasks in flight, last seen",
		Long: fmt.Sprintf(`List the workers that are alive now, from their heartbeats: each worker writes one per
kind every %s, and one that has not written for %s is gone from the list. A line per
worker and kind: id, NATS user, kind, pool, slots, tasks in flight, version, when it started
and when it was last seen.`, bus.WorkersTTL/6, bus.WorkersTTL),
		Example: `  sluice workers list
  sluice workers list --kind e2e -o json | jq -r .id`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(cmd); err != nil {
				return err
			}
			if _, err := parseKinds(kind); kind != "" && err != nil {
				return usageErrorf(cmd, "--kind %q: %v", kind, err)
			}
			ctx := cmd.Context()
			c, err := a.connect(ctx, "sluice workers list")
			if err != nil {
				return err
			}
			defer c.Close()
			ws, err := liveWorkers(cmd, c, kind)
			if err != nil {
				return err
			}
			if !out.table() {
				for _, w := range ws {
					if err := out.write(a.stdout, w); err != nil {
						return err
					}
				}
				return nil
			}
			if len(ws) == 0 {
				a.note("no live workers; start some with `sluice worker --kinds ...`")
				return nil
			}
			t := newTable(a.stdout)
			fmt.Fprintln(t, "ID\tUSER\tKIND\tPOOL\tSLOTS\tIN FLIGHT\tVERSION\tUP\tSEEN")
			for _, w := range ws {
				fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s ago\n", w.GetId(), w.GetUser(), w.GetKind().Slug(), w.GetPool(),
					w.GetSlots(), w.GetInFlight(), w.GetVersion(), fmtDuration(time.Since(w.GetStartedAt().AsTime())),
					fmtDuration(time.Since(w.GetSeenAt().AsTime())))
			}
			return t.Flush()
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "", "only workers of this kind")
	addOutputFlag(cmd, &out, "WorkerInfo")
	return cmd
}

// liveWorkers reads every heartbeat in the workers bucket, ordered by kind, pool and id.
func liveWorkers(cmd *cobra.Command, c *conn, kind string) ([]*sluicev1.WorkerInfo, error) {
	ctx, cancel := c.apiCtx(cmd.Context())
	defer cancel()
	kv, err := c.js.KeyValue(ctx, c.names.WorkersBucket())
	if err != nil {
		return nil, c.explain(ctx, fmt.Errorf("workers bucket %s on %s (is a coordinator of this version running?): %w", c.names.WorkersBucket(), c.url, err))
	}
	filter := ">"
	if kind != "" {
		filter = kind + ".>"
	}
	watch, err := kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, c.explain(ctx, fmt.Errorf("read %s: %w", c.names.WorkersBucket(), err))
	}
	defer func() { _ = watch.Stop() }()
	var ws []*sluicev1.WorkerInfo
	for {
		select {
		case <-ctx.Done():
			return nil, c.explain(ctx, fmt.Errorf("read %s: %w", c.names.WorkersBucket(), ctx.Err()))
		case e, ok := <-watch.Updates():
			if !ok {
				return nil, errors.New("the workers bucket's watch closed")
			}
			if e == nil {
				slices.SortFunc(ws, func(x, y *sluicev1.WorkerInfo) int {
					return strings.Compare(x.GetKind().Slug()+"\x00"+x.GetPool()+"\x00"+x.GetId(), y.GetKind().Slug()+"\x00"+y.GetPool()+"\x00"+y.GetId())
				})
				return ws, nil
			}
			var w sluicev1.WorkerInfo
			if proto.Unmarshal(e.Value(), &w) == nil {
				ws = append(ws, &w)
			}
		}
	}
}
