package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/governance"
)

func newGovernanceCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "governance",
		Short: "The static gate's governance rules, locally",
		Long: `Run the governance rule engine of the static stage kind on this machine, without a fleet
(no NATS needed): the same rules, the same findings, the same exit status as the stage.`,
		Example: `  sluice governance scan .
  sluice governance scan . --rules governance.yaml --baseline governance-baseline.json --fail-on high`,
		Args: noArgs,
		RunE: showHelp,
	}
	cmd.AddCommand(newGovernanceScanCmd(a))
	return cmd
}

func newGovernanceScanCmd(a *app) *cobra.Command {
	var (
		packs                           []string
		rules, baseline, writeBaseline  string
		format, failOn, sarifOut, junit string
		maxFileBytes                    int64
		includeGenerated                bool
	)
	cmd := &cobra.Command{
		Use:   "scan DIR",
		Short: "Scan a source tree with the governance rule packs",
		Long: `Scan a source tree as a stage's governance: block does and report the findings.

Packs (--packs, default all):
  secrets     GOV-001  API keys and tokens (Stripe, AWS, GitHub, Slack), private keys, JWTs,
                       passwords in URLs, generic secret assignments; in every text file,
                       base64 values of Kubernetes Secrets included. Placeholders and values
                       read from the environment, function calls and values that name
                       themselves (mock-, example, cert1-passphrase) are not findings. A
                       finding in a test, fixture or docs file says so (its context).
  supabase    GOV-002  a Supabase client created with the service-role key outside server-only
                       code: admin/ and server/ directories, admin.* and *.server.* modules,
                       files that import "server-only" or start with "use server"
  migrations  GOV-003  DROP TABLE, TRUNCATE or ALTER TABLE ... DROP COLUMN of a protected table
                       (projects, users, payments, audit_log by default) in a migration
                       (migrations/, db/migrate/, *.up.sql, V1__*.sql), found by tokenising
                       SQL: comments and string literals do not count
  ai-markers  AI-001   control flow nested 4 deep or more, one finding per construct (an else
                       if chain is one level): info at 4 or 5, low at 6, medium at 7 and deeper
              AI-002   unresolved AI TODO markers in comments (TODO(ai), "... existing code ...")

--rules FILE adds custom rules and sets the packs' options:

  protected_tables: [projects, users, payments, audit_log, billing.invoices]
  service_role_paths: ["**/admin/**", "**/server/**", "supabase/functions/**"]
  nesting_limit: 4                  # AI-001 reports this depth and deeper
  migration_paths: ["sql/**"]       # where GOV-003 looks (default: migration directories)
  include_generated: false          # as --include-generated
  rule_severity: {AI-001: medium}   # one severity for all of a rule's findings
  context_severity:                 # by the finding's context: code, test, fixture, docs
    GOV-001: {test: low, fixture: low, docs: info}
  allowlist: {paths: ["test/fixtures/**"], regexes: ['^dev-'], stopwords: [dummy]}
  rules:
    - id: ORG-001
      description: No console.log in application code
      severity: low                 # info, low, medium (default), high, critical
      paths: ["src/**"]             # globs; ** spans directories
      regex: 'console\.log\('       # RE2 syntax
      keywords: [console.log]       # the regex runs only on files holding one
      # secret: true (redact the match), secret_group: 1, entropy: 3.5,
      # scope: all (prose too; default code, SQL and configs), allowlist: {...}

A finding is accepted inline with a comment on its line or the line above:
"sluice:ignore GOV-001 why it is fine" (the reason is required). --baseline FILE accepts
the findings recorded by an earlier --write-baseline FILE, so an existing repository adopts
the gate and only new findings fail it.

The tree is read as git sees it: .gitignore files are honoured, and vendored directories
(node_modules, vendor, ...), binary files and files over --max-file-bytes are skipped, and
so are, unless --include-generated: generated files ("Code generated ... DO NOT EDIT",
@generated, *.pb.go), vendored bundles (*.development.js, *.production.min.js, *.bundle.js),
minified files (*.min.js, or code of very long lines) and lock files. The summary (and the
SARIF run's properties) count the skipped files by reason. A secret is never printed whole:
excerpts show a redacted form.

--format text prints a table and a summary; json prints one object per finding (file, line,
column, rule, detector, severity, message, excerpt, fingerprint); sarif and junit print
those reports. --sarif and --junit write them to files besides.

Exit codes: 0 no finding at or above --fail-on, 1 findings at or above it, 2 bad input (an
unreadable directory, rules or baseline file, an invalid regex: the error names the rule and
its file:line).`,
		Example: `  sluice governance scan .
  sluice governance scan . --packs secrets,migrations --fail-on high --sarif governance.sarif
  sluice governance scan . --rules governance.yaml --write-baseline governance-baseline.json
  sluice governance scan . --baseline governance-baseline.json --format json | jq -r '.file + ":" + (.line|tostring)'`,
		Args: exactArgs("DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			threshold, err := governance.ParseSeverity(failOn)
			if err != nil {
				return usageErrorf(cmd, "--fail-on: %v", err)
			}
			switch format {
			case "text", "json", "sarif", "junit":
			default:
				return usageErrorf(cmd, "--format %q: want text, json, sarif or junit", format)
			}
			c := governance.Config{Packs: packs, MaxFileBytes: maxFileBytes, IncludeGenerated: includeGenerated}
			if rules != "" {
				if c.Rules, err = governance.LoadRules(rules); err != nil {
					return withCode(exitUsage, err)
				}
			}
			if baseline != "" {
				if c.Baseline, err = governance.LoadBaseline(baseline); err != nil {
					return withCode(exitUsage, err)
				}
			}
			engine, err := governance.New(c)
			if err != nil {
				return usageErrorf(cmd, "--packs: %v", err)
			}
			if fi, err := os.Stat(args[0]); err != nil || !fi.IsDir() {
				return usageErrorf(cmd, "DIR %s: not a readable directory", args[0])
			}
			rep, err := engine.Scan(cmd.Context(), args[0])
			switch {
			case errors.Is(err, context.Canceled):
				return withCode(exitInterrupted, fmt.Errorf("interrupted: %w", err))
			case err != nil:
				return withCode(exitUsage, err)
			}

			if writeBaseline != "" {
				if err := writeReport(writeBaseline, func(f *os.File) error { return governance.WriteBaseline(f, rep) }); err != nil {
					return err
				}
				inline, _ := rep.Suppressed()
				a.note("wrote %d findings to %s; scan with --baseline %s to accept them", len(rep.Findings)-inline, writeBaseline, writeBaseline)
				return nil
			}
			sarif := func(w io.Writer) error { return governance.WriteSARIF(w, rep, governance.SARIFOptions{}) }
			junitXML := func(w io.Writer) error { return governance.WriteJUnit(w, rep, threshold) }
			for _, out := range []struct {
				file  string
				write func(io.Writer) error
			}{{sarifOut, sarif}, {junit, junitXML}} {
				if out.file == "" {
					continue
				}
				write := out.write
				if err := writeReport(out.file, func(f *os.File) error { return write(f) }); err != nil {
					return err
				}
			}
			switch format {
			case "text":
				err = governance.WriteText(a.stdout, rep, threshold)
			case "json":
				err = governance.WriteJSONLines(a.stdout, rep.Active())
			case "sarif":
				err = sarif(a.stdout)
			case "junit":
				err = junitXML(a.stdout)
			}
			if err != nil {
				return err
			}
			if format != "text" {
				a.note("%s", governance.Summary(rep, threshold))
			}
			if failing := rep.Failing(threshold); len(failing) > 0 {
				return &exitError{code: exitFailed, err: fmt.Errorf("%d findings at or above %s", len(failing), threshold), quiet: true}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&packs, "packs", nil, "rule packs to run: "+strings.Join(governance.AllPacks, ",")+" (default all)")
	f.StringVar(&rules, "rules", "", "rules `FILE` (YAML): custom rules and pack options")
	f.StringVar(&baseline, "baseline", "", "baseline `FILE` of accepted findings")
	f.StringVar(&writeBaseline, "write-baseline", "", "write the findings to the baseline `FILE` and exit 0")
	f.StringVar(&format, "format", "text", "output: text, json (one object per line), sarif or junit")
	f.StringVar(&failOn, "fail-on", governance.DefaultFailOn.String(), "lowest `SEVERITY` that fails: info, low, medium, high or critical")
	f.StringVar(&sarifOut, "sarif", "", "also write SARIF 2.1.0 to `FILE`")
	f.StringVar(&junit, "junit", "", "also write JUnit XML to `FILE`")
	f.Int64Var(&maxFileBytes, "max-file-bytes", governance.DefaultMaxFileBytes, "skip files larger than this")
	f.BoolVar(&includeGenerated, "include-generated", false, "also scan generated files, vendored bundles, minified files and lock files")
	return cmd
}
