package governance

import (
	"bytes"
	"path"
	"strings"
)

// fileKind is what a file is, from its name: it decides which rules read it.
type fileKind uint8

const (
	kindText   fileKind = iota // unknown text: secrets only
	kindProse                  // documentation: secrets only
	kindConfig                 // configs, manifests, env files
	kindShell                  // shell scripts
	kindCode                   // code without a structural scanner
	kindBrace                  // brace languages: structural nesting
	kindPython                 // Python: structural nesting by indentation
	kindSQL                    // SQL: tokenised for GOV-003
)

// isCode: the code rules (AI markers, custom rules by default) read it.
func (k fileKind) isCode() bool { return k >= kindConfig }

// commentStyle is how a language without a structural scanner writes line comments.
type commentStyle uint8

const (
	commentNone  commentStyle = iota
	commentHash               // # ...
	commentDash               // -- ...
	commentSlash              // // ...
	commentHTML               // <!-- ... -->
)

// fileClass is a file's kind with the details its scanners need.
type fileClass struct {
	kind    fileKind
	brace   *braceLang   // kindBrace
	comment commentStyle // kinds without a structural scanner
	jsLike  bool         // JS/TS family: GOV-002 reads it
	shipped bool         // JS, CSS, HTML: a minifier's output is skipped
	yaml    bool         // YAML: Kubernetes Secrets are decoded
}

var (
	langC      = &braceLang{charLits: true, tripleQuote: false}
	langGo     = &braceLang{charLits: true, rawBacktick: true, noParens: true}
	langJS     = &braceLang{templates: true, regexLits: true}
	langJava   = &braceLang{charLits: true, tripleQuote: true}
	langCSharp = &braceLang{charLits: true, tripleQuote: true, verbatim: true}
	langRust   = &braceLang{charLits: true, lifetimes: true, noParens: true}
	langSwift  = &braceLang{tripleQuote: true, noParens: true}
	langPHP    = &braceLang{hashComments: true}
	langDart   = &braceLang{tripleQuote: true}
)

var extClass = map[string]fileClass{
	// Brace languages.
	".go":     {kind: kindBrace, brace: langGo},
	".js":     {kind: kindBrace, brace: langJS, jsLike: true, shipped: true},
	".jsx":    {kind: kindBrace, brace: langJS, jsLike: true},
	".mjs":    {kind: kindBrace, brace: langJS, jsLike: true, shipped: true},
	".cjs":    {kind: kindBrace, brace: langJS, jsLike: true, shipped: true},
	".ts":     {kind: kindBrace, brace: langJS, jsLike: true},
	".tsx":    {kind: kindBrace, brace: langJS, jsLike: true},
	".mts":    {kind: kindBrace, brace: langJS, jsLike: true},
	".cts":    {kind: kindBrace, brace: langJS, jsLike: true},
	".c":      {kind: kindBrace, brace: langC},
	".h":      {kind: kindBrace, brace: langC},
	".cc":     {kind: kindBrace, brace: langC},
	".cpp":    {kind: kindBrace, brace: langC},
	".cxx":    {kind: kindBrace, brace: langC},
	".hpp":    {kind: kindBrace, brace: langC},
	".hh":     {kind: kindBrace, brace: langC},
	".m":      {kind: kindBrace, brace: langC},
	".java":   {kind: kindBrace, brace: langJava},
	".kt":     {kind: kindBrace, brace: langJava},
	".kts":    {kind: kindBrace, brace: langJava},
	".scala":  {kind: kindBrace, brace: langJava},
	".groovy": {kind: kindBrace, brace: langJava},
	".gradle": {kind: kindBrace, brace: langJava},
	".cs":     {kind: kindBrace, brace: langCSharp},
	".rs":     {kind: kindBrace, brace: langRust},
	".swift":  {kind: kindBrace, brace: langSwift},
	".php":    {kind: kindBrace, brace: langPHP},
	".dart":   {kind: kindBrace, brace: langDart},
	// Python.
	".py":  {kind: kindPython},
	".pyi": {kind: kindPython},
	// SQL.
	".sql":  {kind: kindSQL},
	".psql": {kind: kindSQL},
	// Other code.
	".rb":     {kind: kindCode, comment: commentHash},
	".pl":     {kind: kindCode, comment: commentHash},
	".pm":     {kind: kindCode, comment: commentHash},
	".r":      {kind: kindCode, comment: commentHash},
	".ex":     {kind: kindCode, comment: commentHash},
	".exs":    {kind: kindCode, comment: commentHash},
	".ps1":    {kind: kindCode, comment: commentHash},
	".tf":     {kind: kindCode, comment: commentHash},
	".hcl":    {kind: kindCode, comment: commentHash},
	".lua":    {kind: kindCode, comment: commentDash},
	".hs":     {kind: kindCode, comment: commentDash},
	".elm":    {kind: kindCode, comment: commentDash},
	".erl":    {kind: kindCode, comment: commentNone},
	".clj":    {kind: kindCode, comment: commentNone},
	".vue":    {kind: kindCode, comment: commentSlash, jsLike: true},
	".svelte": {kind: kindCode, comment: commentSlash, jsLike: true},
	".html":   {kind: kindCode, comment: commentHTML, shipped: true},
	".htm":    {kind: kindCode, comment: commentHTML, shipped: true},
	".css":    {kind: kindCode, comment: commentNone, shipped: true},
	".scss":   {kind: kindCode, comment: commentSlash},
	// Shell.
	".sh":   {kind: kindShell, comment: commentHash},
	".bash": {kind: kindShell, comment: commentHash},
	".zsh":  {kind: kindShell, comment: commentHash},
	// Configs and manifests.
	".yaml":       {kind: kindConfig, comment: commentHash, yaml: true},
	".yml":        {kind: kindConfig, comment: commentHash, yaml: true},
	".json":       {kind: kindConfig},
	".jsonc":      {kind: kindConfig, comment: commentSlash},
	".toml":       {kind: kindConfig, comment: commentHash},
	".ini":        {kind: kindConfig, comment: commentHash},
	".cfg":        {kind: kindConfig, comment: commentHash},
	".conf":       {kind: kindConfig, comment: commentHash},
	".properties": {kind: kindConfig, comment: commentHash},
	".env":        {kind: kindConfig, comment: commentHash},
	".tfvars":     {kind: kindConfig, comment: commentHash},
	".xml":        {kind: kindConfig, comment: commentHTML},
	".plist":      {kind: kindConfig, comment: commentHTML},
	".npmrc":      {kind: kindConfig, comment: commentHash},
	// Prose.
	".md":       {kind: kindProse},
	".markdown": {kind: kindProse},
	".mdx":      {kind: kindProse},
	".txt":      {kind: kindProse},
	".rst":      {kind: kindProse},
	".adoc":     {kind: kindProse},
	".org":      {kind: kindProse},
}

// nameClass classifies files known by their whole name.
var nameClass = map[string]fileClass{
	"dockerfile":    {kind: kindConfig, comment: commentHash},
	"containerfile": {kind: kindConfig, comment: commentHash},
	"makefile":      {kind: kindShell, comment: commentHash},
	"jenkinsfile":   {kind: kindBrace, brace: langJava},
	"vagrantfile":   {kind: kindCode, comment: commentHash},
	"gemfile":       {kind: kindCode, comment: commentHash},
	"rakefile":      {kind: kindCode, comment: commentHash},
	".pypirc":       {kind: kindConfig, comment: commentHash},
	".netrc":        {kind: kindConfig, comment: commentHash},
	".htpasswd":     {kind: kindConfig},
	".gitconfig":    {kind: kindConfig, comment: commentHash},
	".bashrc":       {kind: kindShell, comment: commentHash},
	".zshrc":        {kind: kindShell, comment: commentHash},
	".profile":      {kind: kindShell, comment: commentHash},
}

// classify returns the class of the file at rel (slash-separated).
func classify(rel string) fileClass {
	base := strings.ToLower(path.Base(rel))
	if c, ok := nameClass[base]; ok {
		return c
	}
	// .env, .env.local, production.env: environment files, whatever follows.
	if base == ".env" || strings.HasPrefix(base, ".env.") {
		return fileClass{kind: kindConfig, comment: commentHash}
	}
	if c, ok := extClass[path.Ext(base)]; ok {
		return c
	}
	if strings.HasPrefix(base, "dockerfile.") || strings.HasSuffix(base, ".dockerfile") {
		return fileClass{kind: kindConfig, comment: commentHash}
	}
	return fileClass{kind: kindText}
}

// vendoredDirs are directories of third-party or built code, skipped whole.
var vendoredDirs = map[string]bool{
	".git": true, ".hg": true, ".svn": true,
	"node_modules": true, "bower_components": true, "jspm_packages": true,
	"vendor": true, "third_party": true, "third-party": true,
	".venv": true, "venv": true, "__pycache__": true, ".tox": true, ".mypy_cache": true,
	"dist": true, ".next": true, ".nuxt": true, ".svelte-kit": true, ".turbo": true,
	"coverage": true, ".terraform": true, ".gradle": true, "Pods": true, "Carthage": true,
}

// binaryExts are skipped without reading them.
var binaryExts = map[string]bool{
	".png": true, ".jpg": true, ".jpeg": true, ".gif": true, ".bmp": true, ".ico": true,
	".webp": true, ".tiff": true, ".psd": true, ".svgz": true, ".avif": true,
	".zip": true, ".gz": true, ".tgz": true, ".bz2": true, ".xz": true, ".zst": true,
	".7z": true, ".rar": true, ".tar": true, ".jar": true, ".war": true, ".whl": true,
	".exe": true, ".dll": true, ".so": true, ".dylib": true, ".a": true, ".o": true,
	".class": true, ".pyc": true, ".wasm": true, ".bin": true, ".dat": true,
	".pdf": true, ".doc": true, ".docx": true, ".xls": true, ".xlsx": true, ".ppt": true,
	".pptx": true, ".woff": true, ".woff2": true, ".ttf": true, ".otf": true, ".eot": true,
	".mp3": true, ".mp4": true, ".mov": true, ".avi": true, ".wav": true, ".ogg": true,
	".webm": true, ".flac": true, ".sqlite": true, ".db": true, ".parquet": true,
	".map": true,
}

// lockfiles are dependency lock files: written by package managers, and their integrity
// hashes look like secrets.
var lockfiles = map[string]bool{
	"package-lock.json": true, "npm-shrinkwrap.json": true, "yarn.lock": true, "pnpm-lock.yaml": true,
	"bun.lockb": true, "bun.lock": true, "deno.lock": true, "go.sum": true, "go.work.sum": true,
	"cargo.lock": true, "poetry.lock": true, "pipfile.lock": true, "pdm.lock": true, "uv.lock": true,
	"composer.lock": true, "gemfile.lock": true, "podfile.lock": true, "packages.lock.json": true,
	"pubspec.lock": true, "mix.lock": true, "flake.lock": true, "package.resolved": true,
	"gradle.lockfile": true, "conan.lock": true,
}

// Suffixes of file names, lower case, that mark third-party bundles (a library's build
// checked in: react-dom.development.js), minified files and codegen output.
var (
	bundleSuffixes = []string{
		".development.js", ".production.js", ".production.min.js", ".profiling.min.js",
		".umd.js", ".umd.min.js", ".bundle.js", ".bundle.mjs", ".chunk.js", ".iife.js",
	}
	minifiedSuffixes  = []string{".min.js", ".min.mjs", ".min.cjs", ".min.css"}
	generatedSuffixes = []string{
		".pb.go", ".pb.gw.go", "_pb2.py", "_pb2_grpc.py", ".pb.ts", "_pb.js", "_pb.d.ts", ".g.dart",
		".freezed.dart", ".designer.cs", ".generated.ts", ".generated.js", ".generated.go", "_generated.go",
	}
)

// skipByName says why a file is not scanned, from its name alone: a lock file, a vendored
// bundle, a minified file or codegen output; "" to scan it.
func skipByName(rel string) SkipReason {
	base := strings.ToLower(path.Base(rel))
	if lockfiles[base] {
		return SkipLockfile
	}
	for _, set := range []struct {
		suffixes []string
		reason   SkipReason
	}{{bundleSuffixes, SkipBundle}, {minifiedSuffixes, SkipMinified}, {generatedSuffixes, SkipGenerated}} {
		for _, suffix := range set.suffixes {
			if strings.HasSuffix(base, suffix) {
				return set.reason
			}
		}
	}
	return ""
}

// generatedHeader reports whether a file's head carries a generated-code marker: Go's
// "Code generated ... DO NOT EDIT.", "@generated", and the "auto-generated, do not edit"
// variants other generators write.
func generatedHeader(b []byte) bool {
	if len(b) > 1024 {
		b = b[:1024]
	}
	if bytes.Contains(b, []byte("@generated")) {
		return true
	}
	return containsFold(b, "do not edit") && containsFold(b, "generated")
}

// Minified code is told by its lines: people keep lines short, a minifier writes one very
// long line or a few, which hold most of the file. A script with one long string in it is
// not minified. A service-account JSON with its private key on one line (~1.7 KB) is a
// config, not code, and is never judged by this.
const (
	minifiedLineBytes = 1000 // a line this long is a minifier's
	minifiedMinBytes  = 1024 // files smaller than this are read whatever their lines
)

// minifiedContent reports whether code reads like a minifier's output: lines of
// minifiedLineBytes or more hold at least half of it.
func minifiedContent(b []byte) bool {
	if len(b) < minifiedMinBytes {
		return false
	}
	long := 0
	for rest := b; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			i = len(rest)
		}
		if i >= minifiedLineBytes {
			long += i
		}
		rest = rest[min(len(rest), i+1):]
	}
	return 2*long >= len(b)
}

// binaryContent applies git's heuristic: a NUL byte in the first 8000 bytes.
func binaryContent(b []byte) bool {
	if len(b) > 8000 {
		b = b[:8000]
	}
	return bytes.IndexByte(b, 0) >= 0
}

// containsFold reports whether b contains the lower-case ASCII word, ignoring case.
func containsFold(b []byte, word string) bool {
	if len(word) == 0 {
		return true
	}
	first := word[0]
	upper := first
	if 'a' <= first && first <= 'z' {
		upper = first - 'a' + 'A'
	}
	for i := 0; i+len(word) <= len(b); i++ {
		c := b[i]
		if c != first && c != upper {
			continue
		}
		if equalFoldASCII(b[i:i+len(word)], word) {
			return true
		}
	}
	return false
}

// equalFoldASCII compares b with the lower-case ASCII word, ignoring the case of b.
func equalFoldASCII(b []byte, word string) bool {
	if len(b) != len(word) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != word[i] {
			return false
		}
	}
	return true
}
