package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/backupverify/pgcluster/pgtest"
	"github.com/sluice-ci/sluice/coordinator"
	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/version"
)

// envAsCLI makes the test binary act as the sluice binary, for commands that start
// themselves as child processes (bench's coordinator).
const envAsCLI = "SLUICE_TEST_BINARY_IS_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(envAsCLI) == "1" {
		main()
	}
	// Golden output holds wall-clock times; pin the zone they print in.
	time.Local = time.UTC
	// pgtest stops the PostgreSQL cluster the backupverify tests share once all have run.
	os.Exit(pgtest.Main(m))
}

// cli runs the CLI in-process as the binary would and returns its exit code and output.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return cliCtx(t.Context(), args...)
}

func cliCtx(ctx context.Context, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := execute(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// freeURL is a nats:// URL on which nothing listens.
func freeURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "nats://" + addr
}

func TestUsageErrorsExit2(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"unknown command", []string{"deploy"}, `unknown command "deploy" for "sluice"`},
		{"unknown command suggests", []string{"runz"}, `did you mean "run" or "runs"?`},
		{"unknown subcommand", []string{"runs", "delete"}, `unknown command "delete" for "sluice runs"`},
		{"unknown flag", []string{"lint", "--strict", "testdata/good.yaml"}, "unknown flag: --strict"},
		{"bad global flag value", []string{"--log-level", "loud", "lint", "testdata/good.yaml"}, `--log-level "loud"`},
		{"bad prefix", []string{"--prefix", "ci.prod", "runs", "list"}, `--prefix "ci.prod"`},
		{"missing argument", []string{"run"}, "sluice run needs PIPELINE.yaml"},
		{"missing second argument", []string{"logs", "01ABC"}, "sluice logs needs STAGE"},
		{"extra argument", []string{"lint", "a.yaml", "b.yaml"}, `unexpected "b.yaml"`},
		{"argument to a command without", []string{"events", "now"}, `takes no arguments, got "now"`},
		{"bad --set", []string{"run", "testdata/good.yaml", "--set", "NOVALUE"}, `--set "NOVALUE": want KEY=VALUE`},
		{"source and no-source", []string{"run", "testdata/good.yaml", "--source", ".", "--no-source"}, "exclude each other"},
		{"missing source", []string{"run", "testdata/good.yaml", "--source", "testdata/nowhere"}, "testdata/nowhere"},
		{"unknown worker kind", []string{"dev", "--workers", "static,fuzz"}, `unknown kind "fuzz"`},
		{"worker without kinds", []string{"worker", "--kinds", "none"}, "name at least one kind"},
		{"bad concurrency", []string{"worker", "--concurrency", "0"}, "--concurrency 0"},
		{"bad duration flag", []string{"worker", "--grace", "soon"}, `invalid argument "soon"`},
		{"bad replicas", []string{"coordinator", "--replicas", "0"}, "--replicas 0"},
		{"negative limit", []string{"runs", "list", "--limit", "-1"}, "--limit -1"},
		{"missing demo example", []string{"demo", "--example", "testdata/nowhere"}, "pass --example DIR"},
		{"wildcard run id", []string{"logs", "*", "*"}, `ID "*": run ids are letters`},
		{"wildcard stage", []string{"logs", "r1", ">"}, `STAGE ">": stage names are letters`},
		{"dotted run id", []string{"runs", "show", "r1.x"}, `ID "r1.x"`},
		{"wildcard in approve", []string{"approve", "r1", "prod.*"}, `STAGE "prod.*"`},
		{"wildcard in cancel", []string{"cancel", ">"}, `ID ">"`},
		{"wildcard events run", []string{"events", "--run", "*"}, `--run "*"`},
		{"dotted events pipeline", []string{"events", "--pipeline", "a.b"}, `--pipeline "a.b"`},
		{"bad bench runs", []string{"bench", "--runs", "0"}, "--runs 0"},
		{"bad bench inflight", []string{"bench", "--inflight", "-1"}, "--inflight -1"},
		{"bad events type", []string{"events", "--type", "stage. failed"}, `--type "stage. failed"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := cli(t, tt.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, exitUsage, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr does not say %q:\n%s", tt.want, stderr)
			}
			if !strings.Contains(stderr, "--help' for usage") {
				t.Errorf("stderr does not point at --help:\n%s", stderr)
			}
		})
	}
}

func TestHelpExits0(t *testing.T) {
	for _, args := range [][]string{nil, {"--help"}, {"runs"}, {"run", "--help"}, {"help", "events"}} {
		code, stdout, stderr := cli(t, args...)
		if code != exitOK || stdout == "" {
			t.Errorf("sluice %s: exit %d, stdout %d bytes; stderr:\n%s", strings.Join(args, " "), code, len(stdout), stderr)
		}
	}
}

func TestHelpShowsNATSDefault(t *testing.T) {
	_, stdout, _ := cli(t, "run", "--help")
	if !strings.Contains(stdout, "$SLUICE_NATS, then nats://127.0.0.1:4222") {
		t.Errorf("run --help does not explain the --nats default:\n%s", stdout)
	}
}

// Every command teaches: a one-line summary, a longer explanation, and examples.
func TestEveryCommandDocumented(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Name() == "completion" || c.Name() == "help" {
			return
		}
		if c.Short == "" || c.Long == "" || c.Example == "" {
			t.Errorf("%s: Short, Long and Example are all required", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd(io.Discard, io.Discard))
}

func TestExitCode(t *testing.T) {
	unreachable := fmt.Errorf("%w at nats://127.0.0.1:1: connection refused", bus.ErrUnreachable)
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, exitOK},
		{"plain error", errors.New("boom"), exitFailed},
		{"explicit code", withCode(exitUsage, errors.New("bad")), exitUsage},
		{"wrapped explicit code", fmt.Errorf("ctx: %w", withCode(exitInterrupted, context.Canceled)), exitInterrupted},
		{"unreachable NATS", fmt.Errorf("run: %w", unreachable), exitUnreachable},
		{"no coordinator", fmt.Errorf("submit: %w", coordinator.ErrNoCoordinator), exitUnreachable},
		{"refused by the coordinator", fmt.Errorf("submit: %w: bad spec", coordinator.ErrBadRequest), exitUsage},
		{"not found", fmt.Errorf("get: %w", coordinator.ErrNotFound), exitFailed},
		{"conflict", fmt.Errorf("cancel: %w", coordinator.ErrConflict), exitFailed},
		{"explicit code wins over the sentinel", withCode(exitFailed, unreachable), exitFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exitCode(tt.err); got != tt.want {
				t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestReportError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"plain", errors.New("boom"), "sluice: boom\n"},
		{"with hint", &exitError{code: exitUsage, err: errors.New("bad flag"), hint: "Run 'sluice run --help' for usage."}, "sluice: bad flag\nRun 'sluice run --help' for usage.\n"},
		{"quiet", &exitError{code: exitUsage, err: errors.New("already printed"), quiet: true}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			reportError(&b, tt.err)
			if b.String() != tt.want {
				t.Errorf("got %q, want %q", b.String(), tt.want)
			}
		})
	}
}

func TestLint(t *testing.T) {
	tests := []struct {
		name       string
		file       string
		code       int
		stdout     string
		stderrHas  []string
		stderrNone string
	}{
		{name: "valid", file: "testdata/good.yaml", code: exitOK, stdout: "ok: good, 2 stages\n"},
		{name: "the example", file: "../../examples/hello/pipeline.yaml", code: exitOK, stdout: "ok: hello, 7 stages\n"},
		{
			name: "invalid", file: "testdata/bad.yaml", code: exitUsage,
			stderrHas: []string{
				`testdata/bad.yaml:7:5: stages.build.colour: unknown field "colour"`,
				`testdata/bad.yaml:9:11: stages.test.kind: unknown kind "nope"`,
				`testdata/bad.yaml:10:13: stages.test.needs: unknown stage "missing"`,
			},
			// Problems print as FILE:LINE:COL for editors, without a prefix.
			stderrNone: "sluice: ",
		},
		{name: "missing file", file: "testdata/nope.yaml", code: exitUsage, stderrHas: []string{"nope.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := cli(t, "lint", tt.file)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if stdout != tt.stdout {
				t.Errorf("stdout %q, want %q", stdout, tt.stdout)
			}
			for _, s := range tt.stderrHas {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			if tt.stderrNone != "" && strings.Contains(stderr, tt.stderrNone) {
				t.Errorf("stderr has %q:\n%s", tt.stderrNone, stderr)
			}
		})
	}
}

func TestLintSet(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/vars.yaml"
	spec := "version: 1\nname: vars\nstages:\n  deploy: {kind: static, run: [\"echo deploy\"], env: {TARGET: \"${SLUICE_TEST_UNSET_TARGET}\"}}\n"
	if err := os.WriteFile(file, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := cli(t, "lint", file); code != exitUsage || !strings.Contains(stderr, "SLUICE_TEST_UNSET_TARGET") {
		t.Errorf("unset variable: exit %d, stderr:\n%s", code, stderr)
	}
	if code, stdout, stderr := cli(t, "lint", file, "--set", "SLUICE_TEST_UNSET_TARGET=prod"); code != exitOK {
		t.Errorf("with --set: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
}

func TestUnreachableExits3(t *testing.T) {
	url := freeURL(t)
	commands := [][]string{
		{"run", "testdata/good.yaml", "--no-source"},
		{"runs", "list"},
		{"runs", "show", "01ABC"},
		{"events"},
		{"logs", "01ABC", "build"},
		{"cancel", "01ABC"},
		{"worker"},
		{"coordinator"},
	}
	for _, args := range commands {
		t.Run(strings.Join(args[:min(2, len(args))], " "), func(t *testing.T) {
			code, _, stderr := cli(t, append([]string{"--nats", url}, args...)...)
			if code != exitUnreachable {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, exitUnreachable, stderr)
			}
			for _, want := range []string{"cannot reach NATS at " + url, "sluice dev", "--nats"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
		})
	}
}

func TestNATSURLFromEnvironment(t *testing.T) {
	url := freeURL(t)
	t.Setenv(bus.EnvURL, url)
	code, _, stderr := cli(t, "runs", "list")
	if code != exitUnreachable || !strings.Contains(stderr, url) {
		t.Errorf("exit %d, want %d naming %s from $%s; stderr:\n%s", code, exitUnreachable, url, bus.EnvURL, stderr)
	}
	// --nats wins over the environment.
	flagURL := freeURL(t)
	if _, _, stderr := cli(t, "--nats", flagURL, "runs", "list"); !strings.Contains(stderr, flagURL) {
		t.Errorf("--nats %s not used; stderr:\n%s", flagURL, stderr)
	}
}

func TestParseKinds(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{in: "all", want: "static, test, contract, e2e, load, backup-verify, traffic-shift"},
		{in: "none", want: "none"},
		{in: "static, test,static", want: "static, test"},
		{in: "backup-verify", want: "backup-verify"},
		{in: "static,", err: true},
		{in: "lint", err: true},
	}
	for _, tt := range tests {
		got, err := parseKinds(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("parseKinds(%q) error %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if err == nil && kindSlugs(got) != tt.want {
			t.Errorf("parseKinds(%q) = %s, want %s", tt.in, kindSlugs(got), tt.want)
		}
	}
}

func TestTailBuffer(t *testing.T) {
	tb := newTailBuffer(3)
	for _, chunk := range []string{"one\ntw", "o\r\nthree\nfour\n", "fi", "ve"} {
		tb.Write([]byte(chunk))
	}
	lines, dropped := tb.Lines()
	if got := strings.Join(lines, "|"); got != "three|four|five" || dropped != 2 {
		t.Errorf("lines %q, dropped %d; want three|four|five, 2", got, dropped)
	}
}

// discardLogger keeps fleet logs out of test output.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Every bad pipeline of the spec's test corpus fails `sluice lint` with exit 2 and exactly
// the parser's golden lines: one line per problem, each naming file:line.
func TestLintEveryInvalidPipeline(t *testing.T) {
	files, err := filepath.Glob("../../coordinator/spec/testdata/invalid/*.yaml")
	if err != nil || len(files) < 15 {
		t.Fatalf("%d invalid pipelines found (%v); want at least 15", len(files), err)
	}
	lineRef := regexp.MustCompile(`^[^:]+\.yaml:\d+(:\d+)?: `)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			code, stdout, stderr := cli(t, "lint", file)
			if code != exitUsage || stdout != "" {
				t.Fatalf("exit %d, stdout %q; want exit %d and nothing on stdout", code, stdout, exitUsage)
			}
			golden, err := os.ReadFile(strings.TrimSuffix(file, ".yaml") + ".golden")
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Split(strings.TrimSpace(string(golden)), "\n")
			got := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(got) != len(want) {
				t.Fatalf("%d lines, want %d:\n%s", len(got), len(want), stderr)
			}
			for i, line := range got {
				// The golden names the file relative to the spec package.
				if !strings.HasSuffix(line, want[i]) {
					t.Errorf("line %d: %q, want %q", i+1, line, want[i])
				}
				if !lineRef.MatchString(line) {
					t.Errorf("line %d does not start with FILE:LINE: %q", i+1, line)
				}
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, stdout, stderr := cli(t, "version")
	if code != 0 || !strings.HasPrefix(stdout, "sluice "+version.String()+" (go") {
		t.Fatalf("sluice version: exit %d, %q %q", code, stdout, stderr)
	}
	code, stdout, _ = cli(t, "version", "--json")
	var v map[string]string
	if err := json.Unmarshal([]byte(stdout), &v); code != 0 || err != nil || v["version"] != version.String() || v["release"] != version.Release {
		t.Fatalf("sluice version --json: exit %d, %q (%v)", code, stdout, err)
	}
}
