// Package lintwarn counts the warnings linters print. It reads the output of go vet,
// staticcheck, golangci-lint (its text output), eslint (-f unix and -f compact) and lines
// matched by user patterns (RE2 regexes with named groups), and judges the count against a
// limit, so that a static stage's "zero warnings" does not rest on each linter's exit code.
// Reports are SARIF 2.1.0 and JUnit XML. It knows nothing of NATS or the workers.
package lintwarn
