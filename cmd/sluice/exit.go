package main

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/coordinator"
	"github.com/sluice-ci/sluice/internal/bus"
)

// Exit codes, part of the CLI's interface: scripts and CI systems branch on them.
const (
	exitOK          = 0   // done; the run passed
	exitFailed      = 1   // the run failed or was cancelled, or the command failed
	exitUsage       = 2   // bad input: flags, arguments, or the pipeline file
	exitUnreachable = 3   // no NATS server or no coordinator answered
	exitInterrupted = 130 // Ctrl-C while following a run (the run itself continues)
)

// exitError carries the exit code a failure maps to.
type exitError struct {
	code int
	err  error
	// hint is a second line that says what to do, e.g. where to read the usage.
	hint string
	// quiet means the command already printed what went wrong.
	quiet bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withCode gives err an explicit exit code.
func withCode(code int, err error) error { return &exitError{code: code, err: err} }

// usageError is bad input on cmd's command line: exit 2, with a pointer to its help.
func usageError(cmd *cobra.Command, err error) error {
	return &exitError{code: exitUsage, err: err, hint: fmt.Sprintf("Run '%s --help' for usage.", cmd.CommandPath())}
}

func usageErrorf(cmd *cobra.Command, format string, args ...any) error {
	return usageError(cmd, fmt.Errorf(format, args...))
}

// exitCode maps an error to the process exit code: an explicit code first, then the
// sentinels that mean the fleet is out of reach or the input was refused.
func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, bus.ErrUnreachable), errors.Is(err, coordinator.ErrNoCoordinator):
		return exitUnreachable
	case errors.Is(err, coordinator.ErrBadRequest):
		return exitUsage
	}
	return exitFailed
}

// reportError prints err, and its hint, unless the command has already said it.
func reportError(w io.Writer, err error) {
	var ee *exitError
	if errors.As(err, &ee) && ee.quiet {
		return
	}
	fmt.Fprintf(w, "sluice: %v\n", err)
	if ee != nil && ee.hint != "" {
		fmt.Fprintln(w, ee.hint)
	}
}

// exactArgs is cobra.ExactArgs with names for the arguments and an exit code of 2.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < len(names) {
			return usageErrorf(cmd, "%s needs %s", cmd.CommandPath(), joinArgs(names[len(args):]))
		}
		if len(args) > len(names) {
			return usageErrorf(cmd, "%s takes %d argument(s), got %d: unexpected %q", cmd.CommandPath(), len(names), len(args), args[len(names)])
		}
		for i, name := range names {
			if err := checkToken(name, args[i]); err != nil {
				return usageError(cmd, err)
			}
		}
		return nil
	}
}

// tokenArgs are the arguments that become one token of a NATS subject: a wildcard or a
// dot in one would read other runs' subjects.
var tokenArgs = map[string]string{"ID": "run id", "STAGE": "stage name"}

var subjectToken = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// checkToken rejects a run id or stage name that is not one subject token.
func checkToken(arg, value string) error {
	what, ok := tokenArgs[arg]
	if !ok || subjectToken.MatchString(value) {
		return nil
	}
	return fmt.Errorf("%s %q: %ss are letters, digits, '-' and '_' (no NATS wildcards, dots or spaces); see `sluice runs list`", arg, value, what)
}

func joinArgs(names []string) string { return strings.Join(names, " and ") }

func quoteJoin(items []string, sep string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, sep)
}

// noArgs rejects arguments on a command that takes none, suggesting a subcommand when one is
// close (cobra only does that for the root command by itself).
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasSubCommands() {
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if cmd.SuggestionsMinimumDistance <= 0 {
			cmd.SuggestionsMinimumDistance = 2 // cobra's own default, which it sets only lazily
		}
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + quoteJoin(s, " or ") + "?"
		}
		return usageErrorf(cmd, "%s", msg)
	}
	return usageErrorf(cmd, "%s takes no arguments, got %q", cmd.CommandPath(), args[0])
}

// showHelp is the action of a command that only groups subcommands.
func showHelp(cmd *cobra.Command, _ []string) error { return cmd.Help() }
