// Package testreport reads what test suites report and spreads suites over shards:
//
//   - Parser and Parse read `go test -json` output (cmd/test2json events) into packages and
//     tests; JUnitSuites turns them into JUnit suites, a package that failed without a
//     failing test (a build error, a panic in TestMain) into a PackageCase case;
//   - ReadJUnit reads the JUnit files other suites write (pytest, Playwright, Surefire, ...);
//   - Failures names the failed tests of suites, Summary says it all in one line;
//   - Split assigns units (packages, test files) to shards longest processing time first,
//     over their recorded durations (Timings), the same split for every caller.
//
// It needs no NATS, bus, worker or wire type: package workers/testkind adapts it to the test
// stage kind (and keeps the recorded durations in a KV bucket), and `sluice testreport`
// runs it locally.
package testreport
