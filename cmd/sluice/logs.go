package main

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

func newLogsCmd(a *app) *cobra.Command {
	var (
		attempt int32
		follow  bool
	)
	cmd := &cobra.Command{
		Use:   "logs ID STAGE",
		Short: "Print the output of one stage of a run",
		Long: `Print what a stage's commands wrote (stdout and stderr, interleaved as they happened) and
the worker's own lines about it, from the logs stream. Every attempt is printed, each after
an "--- attempt N" line when there are several; --attempt picks one. --follow keeps printing
new output until the run ends (or Ctrl-C).

Logs are kept for a limited time and size (7 days and 1 GiB by default).`,
		Example: `  sluice logs 01JD3K5W7N8Q2R4T6V8X0Z2B4D test
  sluice logs 01JD3K5W7N8Q2R4T6V8X0Z2B4D test --attempt 2
  sluice logs 01JD3K5W7N8Q2R4T6V8X0Z2B4D e2e --follow`,
		Args:              exactArgs("ID", "STAGE"),
		ValidArgsFunction: completeRunThenStage(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, stage := args[0], args[1]
			ctx := cmd.Context()
			c, err := a.connect(ctx, "sluice logs")
			if err != nil {
				return err
			}
			defer c.Close()
			var printed bool
			var last struct{ attempt, shard int32 }
			if follow {
				var stop context.CancelFunc
				ctx, stop = untilRunEnds(ctx, c, id)
				defer stop()
			}
			err = readStream(ctx, c, c.names.LogsStream(), c.names.Log(id, stage), follow, func(m jetstream.Msg) error {
				var chunk sluicev1.LogChunk
				if err := proto.Unmarshal(m.Data(), &chunk); err != nil {
					fmt.Fprintf(a.stderr, "(skipped an undecodable log chunk: %v)\n", err)
					return nil
				}
				if attempt > 0 && chunk.GetAttempt() != attempt {
					return nil
				}
				cur := struct{ attempt, shard int32 }{chunk.GetAttempt(), chunk.GetShardIndex()}
				if cur != last && (printed || cur.attempt > 1 || cur.shard > 0) {
					header := fmt.Sprintf("--- attempt %d", cur.attempt)
					if cur.shard > 0 || last.shard > 0 {
						header += fmt.Sprintf(", shard %d", cur.shard+1)
					}
					fmt.Fprintln(a.stdout, header)
				}
				last, printed = cur, true
				_, err := a.stdout.Write(chunk.GetData())
				return err
			})
			if err != nil {
				if follow && followEnded(ctx, err) {
					return nil
				}
				return err
			}
			if !printed {
				return fmt.Errorf("no output stored for stage %q of run %q; check both with `sluice runs show %s`", stage, id, id)
			}
			return nil
		},
	}
	cmd.Flags().Int32Var(&attempt, "attempt", 0, "only this attempt (default: all)")
	cmd.Flags().BoolVar(&follow, "follow", false, "keep printing new output until the run ends")
	return cmd
}
