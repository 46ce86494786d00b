package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

func newArtifactsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "artifacts",
		Short: "List and download the artifacts of a run's stages",
		Long: `Stages store what they produce in the artifacts object store: SARIF and JUnit reports of the
static gate, screenshots of failed browser journeys, k6 summaries, contract reports, backup
verification reports. 'artifacts list' shows them, 'artifacts get' downloads one.`,
		Example: `  sluice artifacts list 01JD3K5W7N8Q2R4T6V8X0Z2B4D
  sluice artifacts get 01JD3K5W7N8Q2R4T6V8X0Z2B4D governance governance.sarif -o report.sarif`,
		Args: noArgs,
		RunE: showHelp,
	}
	cmd.AddCommand(newArtifactsListCmd(a), newArtifactsGetCmd(a))
	return cmd
}

func newArtifactsListCmd(a *app) *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "list ID [STAGE]",
		Short: "List the artifacts of a run, or of one stage",
		Long: `List the artifacts the run's stages stored: stage, name, size and content type. Download one
with 'sluice artifacts get ID STAGE NAME'. -o json or yaml prints each ArtifactRef with its
stage.`,
		Example: `  sluice artifacts list 01JD3K5W7N8Q2R4T6V8X0Z2B4D
  sluice artifacts list 01JD3K5W7N8Q2R4T6V8X0Z2B4D e2e -o json`,
		Args:              cobra.RangeArgs(1, 2),
		ValidArgsFunction: completeRunThenStage(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(cmd); err != nil {
				return err
			}
			c, err := a.connect(cmd.Context(), "sluice artifacts list")
			if err != nil {
				return err
			}
			defer c.Close()
			run, err := getRun(cmd, c, args[0])
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			if out.table() {
				fmt.Fprintln(tw, "STAGE\tNAME\tSIZE\tTYPE")
			}
			n := 0
			for _, s := range run.GetStages() {
				if len(args) == 2 && s.GetName() != args[1] {
					continue
				}
				for _, ref := range s.GetArtifacts() {
					n++
					if !out.table() {
						if err := out.writeValue(a.stdout, map[string]any{
							"stage": s.GetName(), "name": ref.GetName(), "object": ref.GetObject(), "contentType": ref.GetContentType(),
							"size": ref.GetSize(), "digest": ref.GetDigest(),
						}); err != nil {
							return err
						}
						continue
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", s.GetName(), ref.GetName(), ref.GetSize(), ref.GetContentType())
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if n == 0 {
				a.note("(no artifacts)")
			}
			return nil
		},
	}
	addOutputFlag(cmd, &out, "artifact")
	return cmd
}

func newArtifactsGetCmd(a *app) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "get ID STAGE NAME",
		Short: "Download one artifact of a stage",
		Long: `Download an artifact a stage stored (see 'sluice artifacts list') to a file (-o), into a
directory (-o DIR/), or to standard output.`,
		Example: `  sluice artifacts get 01JD3K5W7N8Q2R4T6V8X0Z2B4D governance governance.sarif -o report.sarif
  sluice artifacts get 01JD3K5W7N8Q2R4T6V8X0Z2B4D e2e screenshots/login.yaml/step-3.png -o shots/`,
		Args:              exactArgs("ID", "STAGE", "NAME"),
		ValidArgsFunction: completeRunThenStage(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, stage, name := args[0], args[1], args[2]
			c, err := a.connect(cmd.Context(), "sluice artifacts get")
			if err != nil {
				return err
			}
			defer c.Close()
			run, err := getRun(cmd, c, id)
			if err != nil {
				return err
			}
			ref := findArtifact(run, stage, name)
			if ref == nil {
				return withCode(exitFailed, fmt.Errorf("run %s has no artifact %q in stage %q (list them with `sluice artifacts list %s`)", id, name, stage, id))
			}
			data, err := readArtifact(cmd.Context(), c, ref)
			if err != nil {
				return err
			}
			if out == "" {
				_, err := a.stdout.Write(data)
				return err
			}
			path := out
			if info, err := os.Stat(out); (err == nil && info.IsDir()) || os.IsPathSeparator(out[len(out)-1]) {
				path = filepath.Join(out, filepath.Base(ref.GetName()))
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				return err
			}
			a.note("wrote %s (%d bytes)", path, ref.GetSize())
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "file or directory to write to (default: standard output)")
	return cmd
}

func findArtifact(run *sluicev1.RunState, stage, name string) *sluicev1.ArtifactRef {
	for _, s := range run.GetStages() {
		if s.GetName() != stage {
			continue
		}
		for _, ref := range s.GetArtifacts() {
			if ref.GetName() == name {
				return ref
			}
		}
	}
	return nil
}

// maxArtifactBytes bounds what `artifacts get` reads into memory to check its digest.
const maxArtifactBytes = 256 << 20

// readArtifact downloads an artifact and checks it still has the digest its stage recorded:
// an object replaced after the stage ended is refused, not handed out as the stage's.
func readArtifact(ctx context.Context, c *conn, ref *sluicev1.ArtifactRef) (_ []byte, err error) {
	ctx, cancel := c.bind(ctx)
	defer cancel()
	defer func() { err = c.explain(ctx, err) }()
	store, err := c.js.ObjectStore(ctx, c.names.ArtifactsStore())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", c.names.ArtifactsStore(), err)
	}
	obj, err := store.Get(ctx, ref.GetObject())
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", ref.GetObject(), err)
	}
	defer obj.Close()
	data, err := io.ReadAll(io.LimitReader(obj, maxArtifactBytes+1))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", ref.GetObject(), err)
	}
	if len(data) > maxArtifactBytes {
		return nil, fmt.Errorf("artifact %s is larger than %d bytes", ref.GetObject(), maxArtifactBytes)
	}
	sum := sha256.Sum256(data)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != ref.GetDigest() {
		return nil, fmt.Errorf("artifact %s has digest %s, but its stage recorded %s: it was replaced after the stage ended", ref.GetObject(), got, ref.GetDigest())
	}
	return data, nil
}
