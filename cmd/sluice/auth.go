package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/internal/auth"
	"github.com/sluice-ci/sluice/internal/evidence"
)

func newAuthCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Create a fleet's credentials, and mint users for machines and people",
		Long: `A Sluice fleet trusts its NATS server to tell its users apart: the server runs in operator
mode, each user has credentials signed by its role's key, and the role decides what the user
may publish and subscribe to. Nothing but the work a gate gates may open it:

  coordinator           writes run state, locks, tasks and events; serves the run API
  worker-<kind>         pulls only its kind's tasks (of its pools), publishes results only
                        under its own name, writes logs and artifacts, reads sources
  submitter             submits runs and reads them; uploads sources
  approver              approves, rolls back and cancels; reads
  observer              reads runs, events, logs and artifacts
  admin                 everything

'sluice auth init' creates a new fleet's keys and one user of each role; 'sluice auth
add-user' mints more (one per machine, one per person) without touching the server.`,
		Example: `  sluice auth init --out .sluice/auth
  sluice dev --auth .sluice/auth
  sluice auth add-user approver alice --dir .sluice/auth
  sluice approve RUN production --creds .sluice/auth/creds/approver-alice.creds`,
		Args: noArgs,
		RunE: showHelp,
	}
	cmd.AddCommand(newAuthInitCmd(a), newAuthAddUserCmd(a))
	return cmd
}

func newAuthInitCmd(a *app) *cobra.Command {
	var (
		out, listen, clusterStore string
		pools, cluster            []string
		syncAlways                bool
	)
	cmd := &cobra.Command{
		Use:   "init --out DIR",
		Short: "Create the keys, server configuration and credentials of a new fleet",
		Long: `Create the auth directory of a new fleet:

  DIR/nats-server.conf      a whole server configuration (listen, JetStream, auth)
  DIR/auth.conf             the operator-mode part, which every node of a cluster includes
  DIR/cluster/<host>.conf   with --cluster: the configuration of each node of a NATS cluster
  DIR/creds/<role>.creds    NATS credentials of the default user of each role
  DIR/tokens/<role>.token   HTTP API bearer tokens of the same users
  DIR/trust.json            public keys coordinators check HTTP tokens with
  DIR/policy.yaml           protected refs and approval groups; edit it
  DIR/evidence.pub          the key 'sluice evidence verify --key' checks evidence with
  DIR/coordinator/          the coordinators' evidence signing key
  DIR/keys/                 the issuing keys: needed by 'auth add-user', keep them offline

The server runs in operator (JWT) mode: the SLUICE account has one scoped signing key per
role whose template holds the role's permissions, so every user a role's key signs gets
exactly them, writes its own name into the subjects it publishes on, and reads only its own
inbox. Users are minted offline; the server never needs to change for a new one.

Run 'sluice dev --auth DIR' for a fleet in one process, or 'nats-server -c
DIR/nats-server.conf' with 'sluice coordinator --auth DIR' and 'sluice worker --auth DIR'
on their machines; clients pass '--creds DIR/creds/<role>.creds'.`,
		Example: `  sluice auth init --out .sluice/auth
  sluice auth init --out /etc/sluice/auth --pools default,gpu --listen 0.0.0.0:4222
  # A 3-node cluster whose nodes fsync every write (the compose fleet, make fleet):
  sluice auth init --out .fleet/auth --cluster nats-1,nats-2,nats-3 --sync-always`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf(cmd, "--out DIR is required: where to write the fleet's keys and credentials")
			}
			sum, err := auth.Init(out, auth.InitOptions{Names: a.names(), Pools: pools, Listen: listen,
				Cluster: cluster, ClusterStoreDir: clusterStore, SyncAlways: syncAlways})
			if err != nil {
				if errors.Is(err, auth.ErrExists) || errors.Is(err, auth.ErrBadName) {
					return usageError(cmd, err)
				}
				return err
			}
			l := auth.Layout{Dir: out}
			fmt.Fprintf(a.stdout, "created the fleet's keys and %d users in %s\n", len(sum.Users), out)
			tw := newTable(a.stdout)
			fmt.Fprintln(tw, "PRINCIPAL\tCREDENTIALS\tHTTP TOKEN")
			for _, u := range sum.Users {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", auth.Principal(u.Role, u.Name), u.Creds, u.TokenFile)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "\nserver config   %s\npolicy          %s (main may be submitted only by submitter:default and admin)\nevidence key    %s\n",
				l.Config(), l.Policy(), l.EvidencePub())
			for _, h := range cluster {
				fmt.Fprintf(a.stdout, "cluster node    %s (on host %s: nats-server -c %s)\n", l.ClusterConfig(h), h, l.ClusterConfig(h))
			}
			fmt.Fprintf(a.stdout, "Next: sluice dev --auth %s, then sluice run PIPELINE.yaml --creds %s\n", out, l.Creds(auth.RoleSubmitter, auth.DefaultUser))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "directory to create (it must not hold a fleet's keys already)")
	f.StringSliceVar(&pools, "pools", []string{auth.DefaultPool}, "pools the default worker users may pull from")
	f.StringVar(&listen, "listen", "127.0.0.1:4222", "client address written into nats-server.conf")
	f.StringSliceVar(&cluster, "cluster", nil, "hosts of a NATS cluster: write cluster/<host>.conf for each, a node routing to the others on port 6222 (clients on 4222, monitoring on 8222)")
	f.StringVar(&clusterStore, "cluster-store-dir", "/data/jetstream", "JetStream store directory written into the cluster nodes' configs")
	f.BoolVar(&syncAlways, "sync-always", false, "fsync every JetStream write before acknowledging it (sync_interval: always): no acknowledged write is lost on power loss, at a cost in write latency")
	return cmd
}

func newAuthAddUserCmd(a *app) *cobra.Command {
	var (
		dir   string
		pools []string
	)
	cmd := &cobra.Command{
		Use:   "add-user ROLE NAME --dir DIR",
		Short: "Mint credentials and an HTTP token for another user of a role",
		Long: `Mint another user of a role in an auth directory made by 'sluice auth init': a
credentials file DIR/creds/<role>-<name>.creds and an HTTP token DIR/tokens/<role>-<name>.token.
The role's signing key (DIR/keys) signs it; the server needs no change.

Give each machine its own worker user and each person their own approver user: the server
lets a user read only its own inbox and publish only under its own name, so users of one
role cannot see each other's tasks or pass for each other, and the run records who approved.
Worker users name the pools they may pull from (--pools).`,
		Example: `  sluice auth add-user approver alice --dir /etc/sluice/auth
  sluice auth add-user worker-e2e ci-7 --dir /etc/sluice/auth --pools default,big`,
		Args: exactArgs("ROLE", "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				return usageErrorf(cmd, "--dir DIR is required: the auth directory `sluice auth init` made")
			}
			if !cmd.Flags().Changed("pools") {
				pools = nil
			}
			u, err := auth.AddUser(dir, auth.Role(args[0]), args[1], pools)
			if err != nil {
				if errors.Is(err, auth.ErrUnknownRole) || errors.Is(err, auth.ErrBadName) || errors.Is(err, auth.ErrExists) {
					return usageError(cmd, err)
				}
				return err
			}
			fmt.Fprintf(a.stdout, "minted %s\n  credentials  %s\n  HTTP token   %s\n", auth.Principal(u.Role, u.Name), u.Creds, u.TokenFile)
			if len(u.Pools) > 0 {
				fmt.Fprintf(a.stdout, "  pools        %s\n", strings.Join(u.Pools, ", "))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the auth directory")
	cmd.Flags().StringSliceVar(&pools, "pools", []string{auth.DefaultPool}, "worker users: pools it may pull from")
	return cmd
}

func newEvidenceCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "evidence",
		Short: "Check the signed evidence a promotion or rollback left",
		Long: `When a rollout promotes or rolls back, the coordinator signs what the gate decided and
everything it decided on (the run, its commit, who submitted and approved it, every stage's
outcome and every analysis verdict's numbers) as an in-toto Statement in a DSSE envelope,
with the fleet's ed25519 evidence key, and stores it as the stage's artifact
evidence.intoto.json. Anyone with the public key can check it, long after the fleet.`,
		Example: `  sluice artifacts get RUN production evidence.intoto.json -o evidence.json
  sluice evidence verify evidence.json --key evidence.pub`,
		Args: noArgs,
		RunE: showHelp,
	}
	var key string
	verify := &cobra.Command{
		Use:   "verify FILE --key PUB",
		Short: "Verify a gate's evidence and print what it attests",
		Long: `Verify the signed evidence a rollout left when it promoted or rolled back: an in-toto
Statement in a DSSE envelope, signed with the fleet's ed25519 evidence key. Get it with
'sluice artifacts get RUN STAGE evidence.intoto.json'; the key is DIR/evidence.pub from
'sluice auth init' (also in DIR/trust.json).

It prints the run, the commit, the decision and every stage's outcome, and exits 0 when the
signature verifies, 1 when it does not (any changed byte), 2 when a file cannot be read.`,
		Example: `  sluice artifacts get RUN production evidence.intoto.json -o evidence.json
  sluice evidence verify evidence.json --key .sluice/auth/evidence.pub`,
		Args: exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" {
				return usageErrorf(cmd, "--key PUB is required: the fleet's evidence.pub")
			}
			keyData, err := os.ReadFile(key)
			if err != nil {
				return usageError(cmd, fmt.Errorf("--key: %w", err))
			}
			pub, err := auth.ParsePublicKey(keyData)
			if err != nil {
				return usageError(cmd, fmt.Errorf("--key %s: %w", key, err))
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return usageError(cmd, err)
			}
			st, err := evidence.Verify(data, pub)
			if err != nil {
				return withCode(exitFailed, fmt.Errorf("%s: %w", args[0], err))
			}
			g := st.Predicate
			fmt.Fprintf(a.stdout, "verified: %s of %s in run %s (%s), signed by key %s\n", g.Decision, g.Stage, g.Run, g.Pipeline, evidence.KeyID(pub)[:16])
			fmt.Fprintf(a.stdout, "  ref %s (protected: %t), commit %s, source %s, submitted by %s\n", g.Ref, g.RefProtected, orNone(g.Commit), orNone(g.SourceDigest), g.SubmittedBy)
			if g.Reason != "" {
				fmt.Fprintf(a.stdout, "  reason: %s\n", g.Reason)
			}
			for _, s := range g.Stages {
				line := fmt.Sprintf("  %-16s %-10s #%d", s.Name, s.Status, s.Attempt)
				if s.ApprovedBy != "" {
					line += "  approved by " + s.ApprovedBy
				}
				fmt.Fprintln(a.stdout, line)
			}
			for _, v := range g.Verdicts {
				fmt.Fprintf(a.stdout, "  verdict step %d at %d%%: %s\n", v.Step, v.Weight, v.Outcome)
				for _, m := range v.Metrics {
					fmt.Fprintf(a.stdout, "    %-20s canary %-10.4g baseline %-10.4g limit %-8.4g %s\n", m.Name, m.Canary, m.Baseline, m.Limit, m.Outcome)
				}
			}
			return nil
		},
	}
	verify.Flags().StringVar(&key, "key", "", "the fleet's evidence public key (PEM), DIR/evidence.pub")
	cmd.AddCommand(verify)
	return cmd
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
