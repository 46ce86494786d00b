package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/internal/bus"
)

// app is what every command shares: the global flags and where to write.
type app struct {
	natsURL  string
	creds    string
	tlsCert  string
	tlsKey   string
	tlsCA    string
	prefix   string
	logLevel string

	stdout, stderr io.Writer
	// log is set from --log-level before any command runs.
	log *slog.Logger
}

func (a *app) names() bus.Names { return bus.NewNames(a.prefix) }

// envCreds names the credentials file when --creds is not given.
const envCreds = "SLUICE_CREDS"

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr, log: slog.New(slog.DiscardHandler)}
	root := &cobra.Command{
		Use:   "sluice",
		Short: "CI/CD gate pipelines on a NATS JetStream fleet",
		Long: `Sluice runs CI/CD gate pipelines on a fleet of machines.

A pipeline is a YAML file: a DAG of stages (lint, tests, governance, backup verification,
e2e, load, a gated deploy). A coordinator turns a submitted run into tasks on NATS
JetStream; workers, each specialised for some kinds of stage, pull the tasks of their kinds,
run them, stream their logs and report typed results; every transition is an event on a
stream that other systems can subscribe to.

Start a whole fleet in one process with 'sluice dev', then submit runs to it from another
terminal with 'sluice run'. In production run 'sluice coordinator' and 'sluice worker'
processes against a NATS cluster and point every command at it with --nats or $SLUICE_NATS.

Exit codes: 0 ok (the run passed), 1 failed or cancelled, 2 bad input (flags, arguments,
pipeline file), 3 cannot reach NATS or a coordinator, 130 interrupted while following.`,
		Example: `  # Everything in one process, then a run against it from another terminal:
  sluice dev
  sluice run examples/hello/pipeline.yaml

  # The example pipeline end to end on a throwaway fleet:
  sluice demo

  # Point any command at a remote fleet:
  SLUICE_NATS=nats://ci-nats:4222 sluice runs list`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          noArgs,
		RunE:          showHelp,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.setup(cmd)
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError(cmd, err) })

	pf := root.PersistentFlags()
	pf.StringVar(&a.natsURL, "nats", "", "NATS server URL (default: $SLUICE_NATS, then nats://127.0.0.1:4222)")
	pf.StringVar(&a.creds, "creds", os.Getenv(envCreds), "NATS credentials file, from 'sluice auth init' (default: $SLUICE_CREDS)")
	pf.StringVar(&a.tlsCert, "tls-cert", "", "TLS client certificate file (with --tls-key)")
	pf.StringVar(&a.tlsKey, "tls-key", "", "TLS client key file (with --tls-cert)")
	pf.StringVar(&a.tlsCA, "tls-ca", "", "CA bundle that signs the NATS server's certificate")
	pf.StringVar(&a.prefix, "prefix", bus.DefaultPrefix, "prefix of every subject, stream and bucket, to share one NATS account between installations")
	pf.StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn or error")

	root.AddCommand(
		newDevCmd(a),
		newDemoCmd(a),
		newCoordinatorCmd(a),
		newWorkerCmd(a),
		newRunCmd(a),
		newLintCmd(a),
		newRunsCmd(a),
		newLogsCmd(a),
		newCancelCmd(a),
		newApproveCmd(a),
		newRollbackCmd(a),
		newRolloutCmd(a),
		newRetryCmd(a),
		newEventsCmd(a),
		newContractCmd(a),
		newLoadCmd(a),
		newE2ECmd(a),
		newRouterCmd(a),
		newBackupVerifyCmd(a),
		newGovernanceCmd(a),
		newTestReportCmd(a),
		newArtifactsCmd(a),
		newAuthCmd(a),
		newEvidenceCmd(a),
		newHealthcheckCmd(a),
		newBenchCmd(a),
		newWorkersCmd(a),
		newNotifyCmd(a),
		newVersionCmd(a),
	)
	return root
}

// setup checks the global flags and builds the logger the long-running roles (dev,
// coordinator, worker) log with.
func (a *app) setup(cmd *cobra.Command) error {
	if !subjectToken.MatchString(a.prefix) {
		return usageErrorf(cmd, "--prefix %q: use letters, digits, '-' and '_' only (it becomes part of subjects and stream names)", a.prefix)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
		return usageErrorf(cmd, "--log-level %q: want debug, info, warn or error", a.logLevel)
	}
	a.log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
	return nil
}

// natsTarget is the URL commands connect to, resolved the way the --nats help says.
func (a *app) natsTarget() string {
	if a.natsURL != "" {
		return a.natsURL
	}
	return bus.DefaultURL()
}

// note prints a side remark (a default that was chosen, what happens next) on stderr, so
// stdout stays clean for what scripts read.
func (a *app) note(format string, args ...any) {
	fmt.Fprintf(a.stderr, format+"\n", args...)
}
