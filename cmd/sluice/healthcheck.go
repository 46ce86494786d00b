package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"
)

// healthcheck exists because the fleet's images are FROM scratch: no shell, no curl, but
// every one of them carries this binary.
func newHealthcheckCmd(a *app) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck URL",
		Short: "Exit 0 if an HTTP health endpoint answers 2xx (for container health checks)",
		Long: `GET URL and exit 0 if it answers with a 2xx status within --timeout, 1 otherwise, with
the status or the error on stderr. The fleet's images have no shell or curl; compose.yaml
checks the NATS nodes (their monitoring port's /healthz) and the coordinators (/healthz of
the HTTP API) with it.`,
		Example: `  sluice healthcheck http://127.0.0.1:8222/healthz
  sluice healthcheck --timeout 2s http://127.0.0.1:8080/healthz`,
		Args: exactArgs("URL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			u, err := url.Parse(args[0])
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usageErrorf(cmd, "URL %q: want an http:// or https:// URL with a host", args[0])
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
			if err != nil {
				return usageError(cmd, err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("healthcheck %s: %w", u.Redacted(), err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			if resp.StatusCode/100 != 2 {
				return fmt.Errorf("healthcheck %s: %s: %s", u.Redacted(), resp.Status, body)
			}
			fmt.Fprintf(a.stdout, "%s: %s\n", u.Redacted(), resp.Status)
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the answer")
	return cmd
}
