package governance

import (
	"path"
	"strings"
)

// Context is what a finding's file is for, from its path: application code, a test, a
// fixture (test data, mocks, snapshots) or documentation (prose, docs/ and examples/,
// OpenAPI and Swagger descriptions). A
// secret in a test is still a secret, and is still reported; its context lets a rules
// file's context_severity judge it apart, and SARIF carries it as a result property.
type Context string

// The contexts of a finding.
const (
	ContextCode    Context = "code"
	ContextTest    Context = "test"
	ContextFixture Context = "fixture"
	ContextDocs    Context = "docs"
)

// Contexts lists the contexts, as context_severity accepts them.
var Contexts = []Context{ContextCode, ContextTest, ContextFixture, ContextDocs}

func joinContexts() string {
	parts := make([]string, len(Contexts))
	for i, c := range Contexts {
		parts[i] = string(c)
	}
	return strings.Join(parts, ", ")
}

// Directory names, lower case, that put everything below them in a context.
var (
	fixtureDirs = map[string]bool{
		"testdata": true, "test-data": true, "test_data": true, "fixtures": true, "fixture": true,
		"__fixtures__": true, "__mocks__": true, "mocks": true, "mock": true, "__snapshots__": true,
		"snapshots": true, "golden": true, "stubs": true,
	}
	testDirs = map[string]bool{
		"test": true, "tests": true, "__tests__": true, "spec": true, "specs": true, "e2e": true,
		"testing": true, "integration-tests": true, "integration_tests": true, "cypress": true,
		"playwright": true,
	}
	docsDirs = map[string]bool{
		"docs": true, "doc": true, "documentation": true, "examples": true, "example": true,
		"samples": true, "sample": true, "release notes": true, "release-notes": true,
		"changelog": true, "changelogs": true, "website": true,
	}
)

// fileContext classifies the file at rel (slash-separated) of class cls. A fixture
// directory wins over a test one (tests/fixtures/key.pem is test data), a test file's name
// over a docs directory (examples/totp.test.js is a test).
func fileContext(rel string, cls fileClass) Context {
	dirs := strings.Split(strings.ToLower(rel), "/")
	base := dirs[len(dirs)-1]
	dirs = dirs[:len(dirs)-1]
	for _, d := range dirs {
		if fixtureDirs[d] {
			return ContextFixture
		}
	}
	if testFileName(base) {
		return ContextTest
	}
	for _, d := range dirs {
		if testDirs[d] {
			return ContextTest
		}
	}
	// API descriptions hold request and response examples.
	if cls.kind == kindProse || strings.HasPrefix(base, "openapi.") || strings.HasPrefix(base, "swagger.") {
		return ContextDocs
	}
	for _, d := range dirs {
		if docsDirs[d] {
			return ContextDocs
		}
	}
	return ContextCode
}

// testFileName reports whether a lower-case base name is a test's by the conventions of
// its language: foo_test.go, foo.test.ts, foo.spec.js, test_foo.py, foo_test.py,
// FooTest.java, foo_spec.rb, conftest.py.
func testFileName(base string) bool {
	stem := strings.TrimSuffix(base, path.Ext(base))
	switch {
	case strings.HasSuffix(stem, "_test"), strings.HasSuffix(stem, ".test"), strings.HasSuffix(stem, ".spec"),
		strings.HasSuffix(stem, "_spec"), strings.HasSuffix(stem, "-test"), strings.HasSuffix(stem, "-spec"),
		strings.HasPrefix(stem, "test_"), strings.HasPrefix(stem, "test-"), stem == "conftest":
		return true
	}
	// Java, Kotlin and C# name test classes FooTest and FooTests (lower-cased here).
	switch path.Ext(base) {
	case ".java", ".kt", ".cs", ".scala", ".groovy", ".swift":
		return strings.HasSuffix(stem, "test") || strings.HasSuffix(stem, "tests")
	}
	return false
}
