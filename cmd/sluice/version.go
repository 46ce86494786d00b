package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/internal/version"
)

func newVersionCmd(a *app) *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print this binary's version",
		Long: `Print the Sluice release and the commit this binary was built from (when the build
recorded it), with the Go version and platform. The same version is in the run API
service's info (nats micro info sluice-runs), in every SARIF log's tool.driver.version and
in 'sluice worker' and 'sluice coordinator' start-up logs.`,
		Example: `  sluice version
  sluice version -o json | jq -r .version`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(cmd); err != nil {
				return err
			}
			if !out.table() {
				return out.writeValue(a.stdout, map[string]string{
					"version": version.String(), "release": version.Release, "commit": version.Commit(),
					"go": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH,
				})
			}
			_, err := fmt.Fprintf(a.stdout, "sluice %s (%s, %s/%s)\n", version.String(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
	addOutputFlag(cmd, &out, "version, release, commit, go, platform")
	return cmd
}
