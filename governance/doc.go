// Package governance is the static gate's rule engine: it walks a source tree and reports
// findings of built-in rule packs and custom YAML rules. It needs no NATS, bus, worker or
// wire type: package workers/static adapts it to the static stage kind, and `sluice
// governance scan` runs it locally.
//
// Packs and their rule ids:
//
//	secrets     GOV-001  gitleaks-style detectors: keywords prefilter, regex, entropy, allowlists
//	supabase    GOV-002  a service-role Supabase client outside server-only code (paths and
//	                     import "server-only")
//	migrations  GOV-003  DROP TABLE, TRUNCATE or ALTER TABLE ... DROP COLUMN of a protected
//	                     table in a migration, found by tokenising SQL
//	ai-markers  AI-001   control flow nested 4 deep or more, measured on the code's structure,
//	                     one finding per construct, graded by depth
//	            AI-002   unresolved AI TODO markers in comments
//
// Every finding carries its file's context (code, test, fixture, docs), which a rules file
// can give its own severity. A finding on a construct over several lines (a PEM block, a
// statement, a nested if) starts at the construct's first line and ends at its last.
// Generated files, vendored bundles, minified files and lock files are skipped unless
// Config.IncludeGenerated; Stats counts every skipped file by reason.
//
// The engine reads every file once: one Aho-Corasick pass over the bytes finds the keywords
// of every rule (case-insensitively), and a rule's regex then runs only on the lines its
// keywords hit. Structural rules (nesting, SQL, Supabase calls) tokenise only the files of
// their languages. Files are scanned by a bounded set of workers, each with one reusable
// buffer, so memory does not grow with the size of the tree.
//
// A secret is never printed whole: excerpts replace every secret span with a redacted form
// before any output (text, JSON, SARIF, JUnit) sees it.
package governance
