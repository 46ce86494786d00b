package governance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// Pack names.
const (
	PackSecrets    = "secrets"
	PackSupabase   = "supabase"
	PackMigrations = "migrations"
	PackAIMarkers  = "ai-markers"
)

// AllPacks lists the built-in packs, all of which run when Config.Packs is empty.
var AllPacks = []string{PackSecrets, PackSupabase, PackMigrations, PackAIMarkers}

// DefaultMaxFileBytes is the size above which a file is skipped: large files in a source
// tree are data or build output, not code.
const DefaultMaxFileBytes = 2 << 20

// Config configures an Engine. The zero value runs every built-in pack with defaults.
type Config struct {
	Packs        []string  // built-in packs to run; empty: AllPacks
	Rules        *RuleSet  // custom rules and pack settings; nil: none, defaults
	Baseline     *Baseline // accepted findings; nil: none
	MaxFileBytes int64     // default DefaultMaxFileBytes
	Workers      int       // files scanned at once; default GOMAXPROCS
	// IncludeGenerated scans generated files, vendored bundles, minified files and lock
	// files, which are skipped by default (vendored directories stay skipped).
	IncludeGenerated bool
}

// Engine scans trees with a fixed set of rules. It is safe for concurrent use.
type Engine struct {
	packs     map[string]bool
	rx        []*rxRule // keyword-prefiltered regex rules: secrets and custom rules
	secretRx  []int     // indexes of the secrets pack's rules in rx
	ks        *keywordSet
	kwRules   [][]int32 // keyword id -> indexes in rx
	kwLen     []int32   // keyword id -> length
	kwFlags   []uint8   // keyword id -> structural scanners it wakes
	allow     allowlist
	protected []qualName
	srPaths   []string
	nesting   int
	migPaths  []string
	ruleSev   map[string]Severity
	ctxSev    map[string]map[Context]Severity
	maxFile   int64
	workers   int
	baseline  *Baseline
	infos     []RuleInfo
	// includeBuilt: Config.IncludeGenerated or include_generated in the rules file.
	includeBuilt bool
}

// Keyword flags: which structural scanner a keyword wakes.
const (
	flagSupabase uint8 = 1 << iota
	flagMarker
	flagK8s
)

// rxRule is a regex rule with keywords as a prefilter: a secrets detector or a custom rule.
type rxRule struct {
	rule, detector string
	title          string // the finding's message
	description    string
	severity       Severity
	re             *regexp.Regexp
	// valueFrom picks the reported text: the first non-empty capture group from this
	// index on; 0 is the whole match.
	valueFrom int
	keywords  []string
	entropy   float64  // minimum Shannon entropy of the value, bits per byte; 0: none
	secret    bool     // the value is a secret: placeholder filter, redaction everywhere
	generic   bool     // a generic detector: a match a token format's detector covers is dropped
	kinds     uint16   // file kinds it reads (bit per fileKind); 0: every kind
	paths     []string // globs it is limited to; empty: everywhere
	allow     allowlist
	window    int      // bytes past the end of the keyword's line the regex may read
	wholeFile bool     // the regex reads the whole file once a keyword is present (custom rules)
	pre       precheck // on each keyword hit, before the regex; nil: none
	check     func(*match) bool
}

// New compiles the rules of c.
func New(c Config) (*Engine, error) {
	e := &Engine{
		packs:    make(map[string]bool),
		maxFile:  c.MaxFileBytes,
		workers:  c.Workers,
		baseline: c.Baseline,
		nesting:  DefaultNestingLimit,
	}
	if e.maxFile <= 0 {
		e.maxFile = DefaultMaxFileBytes
	}
	if e.workers <= 0 {
		e.workers = runtime.GOMAXPROCS(0)
	}
	packs := c.Packs
	if len(packs) == 0 {
		packs = AllPacks
	}
	for _, p := range packs {
		p = strings.TrimSpace(p)
		if !slices.Contains(AllPacks, p) {
			return nil, fmt.Errorf("%w %q: want %s", ErrUnknownPack, p, strings.Join(AllPacks, ", "))
		}
		e.packs[p] = true
	}
	rs := c.Rules
	if rs == nil {
		rs = &RuleSet{}
	}
	e.allow = rs.allow
	e.includeBuilt = c.IncludeGenerated || rs.IncludeGenerated
	tables := rs.ProtectedTables
	if len(tables) == 0 {
		tables = DefaultProtectedTables
	}
	for _, t := range tables {
		e.protected = append(e.protected, parseQualName(t))
	}
	e.srPaths = rs.ServiceRolePaths
	if len(e.srPaths) == 0 {
		e.srPaths = DefaultServiceRolePaths
	}
	if rs.NestingLimit > 0 {
		e.nesting = rs.NestingLimit
	}
	e.migPaths = rs.MigrationPaths
	if len(e.migPaths) == 0 {
		e.migPaths = DefaultMigrationPaths
	}
	e.ruleSev, e.ctxSev = rs.RuleSeverity, rs.ContextSeverity

	var kws keywordIndex
	if e.packs[PackSecrets] {
		for _, r := range secretDetectors() {
			r.rule, r.secret, r.valueFrom = ruleSecrets, true, max(r.valueFrom, 1)
			if r.detector == "generic-secret" {
				r.valueFrom = 2
			}
			e.secretRx = append(e.secretRx, len(e.rx))
			e.rx = append(e.rx, r)
		}
	}
	e.rx = append(e.rx, rs.custom...)
	for i, r := range e.rx {
		for _, w := range r.keywords {
			id := kws.add(w)
			for int(id) >= len(e.kwRules) {
				e.kwRules = append(e.kwRules, nil)
			}
			if !slices.Contains(e.kwRules[id], int32(i)) {
				e.kwRules[id] = append(e.kwRules[id], int32(i))
			}
		}
	}
	flag := func(f uint8, words ...string) {
		for _, w := range words {
			id := kws.add(w)
			for int(id) >= len(e.kwFlags) {
				e.kwFlags = append(e.kwFlags, 0)
			}
			e.kwFlags[id] |= f
		}
	}
	if e.packs[PackSupabase] {
		flag(flagSupabase, serviceRoleKeywords...)
	}
	if e.packs[PackAIMarkers] {
		flag(flagMarker, markerKeywords...)
	}
	if e.packs[PackSecrets] {
		flag(flagK8s, "secret")
	}
	for len(e.kwRules) < len(kws.words) {
		e.kwRules = append(e.kwRules, nil)
	}
	for len(e.kwFlags) < len(kws.words) {
		e.kwFlags = append(e.kwFlags, 0)
	}
	for _, w := range kws.words {
		e.kwLen = append(e.kwLen, int32(len(w)))
	}
	e.ks = newKeywordSet(kws.words)
	e.infos = e.ruleInfos(rs)
	return e, nil
}

// Rules describes the rules the engine runs, built-in first.
func (e *Engine) Rules() []RuleInfo { return e.infos }

// Scan scans the tree at root and returns its findings, ordered. Findings the baseline or
// an inline sluice:ignore accepts are in the report with their Suppression set.
func (e *Engine) Scan(ctx context.Context, root string) (*Report, error) {
	start := time.Now()
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("scan %s: not a directory", root)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	jobs := make(chan fileJob, 4*e.workers)
	scanners := make([]*scanner, e.workers)
	var wg sync.WaitGroup
	for i := range scanners {
		s := e.newScanner()
		scanners[i] = s
		wg.Go(func() {
			for j := range jobs {
				if err := s.scanFile(j); err != nil {
					cancel(err)
					// Drain, so the walk is never blocked on a full channel.
					for range jobs {
					}
					return
				}
			}
		})
	}
	w := newWalker(root, vendoredDirs)
	walkErr := w.walk(ctx, func(j fileJob) error {
		select {
		case jobs <- j:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
	close(jobs)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, fmt.Errorf("scan %s: %w", root, err)
	}
	if walkErr != nil {
		return nil, fmt.Errorf("scan %s: %w", root, walkErr)
	}

	rep := &Report{Rules: e.infos, Stats: Stats{Skipped: w.skipped}}
	for _, s := range scanners {
		rep.Findings = append(rep.Findings, s.findings...)
		rep.Stats.Files += s.files
		rep.Stats.Bytes += s.bytes
		rep.Stats.Lines += s.lines
		for k, v := range s.skipped {
			rep.Stats.Skipped[k] += v
		}
	}
	sortFindings(rep.Findings)
	rep.Stats.Duration = time.Since(start)
	return rep, nil
}

// ScanFile scans one file's content as if it were at rel in a tree: the rules that apply
// to its name run, suppressions and the baseline apply. Skipping rules (size, binary,
// generated) do not.
func (e *Engine) ScanFile(rel string, content []byte) []Finding {
	s := e.newScanner()
	s.scanContent(path.Clean(rel), classify(rel), content)
	sortFindings(s.findings)
	return s.findings
}

// scanner is one worker's state: buffers reused from file to file, so the hot loop does
// not allocate.
type scanner struct {
	e        *Engine
	buf      []byte
	hits     []kwHit
	lastEnd  []int  // per rx rule: end of the text its regex already read in this file
	applies  []int8 // per rx rule, per file: 0 unknown, 1 yes, -1 no
	whole    []bool // per rx rule, per file: a keyword hit, read the whole file
	raws     []rawFinding
	spans    []span // secret spans to redact in this file
	comments []span // comment spans from the structural scanners, in order
	nest     nestState
	sql      sqlState
	jsToks   []jsTok

	findings []Finding
	files    int
	bytes    int64
	lines    int
	skipped  map[SkipReason]int
}

// rawFinding is a finding before lines, excerpts and fingerprints: byte offsets only.
type rawFinding struct {
	rule, detector string
	severity       Severity
	msg            string
	start, end     int
	anchor         int    // what the finding is about (a name, a value), within [start, end)
	key            string // what matched, for the fingerprint
	generic        bool   // a generic secret: dropped when a specific detector covers it
}

// span is a byte range; for secrets, mask is what replaces it in excerpts.
type span struct {
	start, end int
	mask       string
}

func (e *Engine) newScanner() *scanner {
	return &scanner{
		e:       e,
		lastEnd: make([]int, len(e.rx)),
		applies: make([]int8, len(e.rx)),
		whole:   make([]bool, len(e.rx)),
		skipped: make(map[SkipReason]int),
	}
}

// scanFile reads and scans one file of the walk. Only an unreadable file is an error.
func (s *scanner) scanFile(j fileJob) error {
	ext := strings.ToLower(path.Ext(j.rel))
	if binaryExts[ext] {
		s.skipped[SkipBinary]++
		return nil
	}
	if r := skipByName(j.rel); r != "" && !s.e.includeBuilt {
		s.skipped[r]++
		return nil
	}
	switch {
	case j.size > s.e.maxFile:
		s.skipped[SkipTooLarge]++
		return nil
	case j.size == 0:
		return nil
	}
	f, err := os.Open(j.abs)
	if err != nil {
		return fmt.Errorf("read %s: %w", j.rel, err)
	}
	defer f.Close()
	if int64(cap(s.buf)) < j.size {
		s.buf = make([]byte, j.size)
	}
	n, err := io.ReadFull(f, s.buf[:j.size])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("read %s: %w", j.rel, err)
	}
	b := s.buf[:n]
	if binaryContent(b) {
		s.skipped[SkipBinary]++
		return nil
	}
	cls := classify(j.rel)
	if !s.e.includeBuilt {
		switch {
		case generatedHeader(b):
			s.skipped[SkipGenerated]++
			return nil
		case cls.shipped && minifiedContent(b):
			s.skipped[SkipMinified]++
			return nil
		}
	}
	s.files++
	s.bytes += int64(n)
	s.lines += bytes.Count(b, []byte{'\n'})
	if n > 0 && b[n-1] != '\n' {
		s.lines++
	}
	s.scanContent(j.rel, cls, b)
	return nil
}

// scanContent runs every applicable rule over one file and appends its findings.
func (s *scanner) scanContent(rel string, cls fileClass, b []byte) {
	e := s.e
	s.raws, s.spans, s.comments = s.raws[:0], s.spans[:0], s.comments[:0]
	clear(s.lastEnd)
	clear(s.applies)
	clear(s.whole)

	s.hits = e.ks.scan(b, s.hits[:0])
	var flags uint8
	for _, h := range s.hits {
		flags |= e.kwFlags[h.kw]
		for _, ri := range e.kwRules[h.kw] {
			if !s.ruleApplies(int(ri), rel, cls) {
				continue
			}
			r := e.rx[ri]
			if r.wholeFile {
				s.whole[ri] = true
				continue
			}
			start := int(h.end - e.kwLen[h.kw])
			if start < s.lastEnd[ri] || r.pre != nil && !r.pre(b, start, int(h.end)) {
				continue
			}
			ls, le := lineBounds(b, start)
			we := min(len(b), le+r.window)
			s.lastEnd[ri] = max(le, s.matchRx(int(ri), b, ls, we))
		}
	}
	for ri, r := range e.rx {
		if r.wholeFile && (s.whole[ri] || len(r.keywords) == 0) && s.ruleApplies(ri, rel, cls) {
			s.matchRx(ri, b, 0, len(b))
		}
	}
	if cls.yaml && flags&flagK8s != 0 {
		s.scanK8sSecrets(rel, b)
	}

	switch {
	case cls.kind == kindBrace && e.packs[PackAIMarkers]:
		s.nest.scanBrace(s, b, cls.brace)
	case cls.kind == kindPython && e.packs[PackAIMarkers]:
		s.nest.scanPython(s, b)
	}
	if cls.kind == kindSQL && (e.packs[PackMigrations] || flags&flagMarker != 0) {
		s.sql.scan(s, rel, b)
	}
	if flags&flagSupabase != 0 && (cls.jsLike || cls.kind == kindPython) {
		s.scanSupabase(rel, cls, b)
	}
	if flags&flagMarker != 0 && cls.kind.isCode() {
		s.scanMarkers(cls, b)
	}
	if len(s.raws) > 0 {
		s.finish(rel, fileContext(rel, cls), b)
	}
}

// ruleApplies reports, once per file and rule, whether rule ri reads this file.
func (s *scanner) ruleApplies(ri int, rel string, cls fileClass) bool {
	if a := s.applies[ri]; a != 0 {
		return a > 0
	}
	r := s.e.rx[ri]
	ok := (r.kinds == 0 || r.kinds&(1<<cls.kind) != 0) &&
		!s.e.allow.allowsPath(rel) && !r.allow.allowsPath(rel)
	if ok && len(r.paths) > 0 {
		ok = false
		for _, g := range r.paths {
			if matchGlob(g, rel) {
				ok = true
				break
			}
		}
	}
	s.applies[ri] = -1
	if ok {
		s.applies[ri] = 1
	}
	return ok
}

// matchRx runs rule ri's regex over b[from:to] and records its matches; it returns the
// end of the last match (or from).
func (s *scanner) matchRx(ri int, b []byte, from, to int) int {
	r := s.e.rx[ri]
	last := from
	for _, sub := range r.re.FindAllSubmatchIndex(b[from:to], -1) {
		last = max(last, from+sub[1])
		s.consider(r, b[from:to], from, sub, "", 0, 0)
	}
	return last
}

// consider applies a match's filters and records it. text is what the regex ran on, at
// offset base in the file. For a value decoded from the file (a Kubernetes Secret), at
// says where in the file it was ([atStart, atEnd)) and note is added to the message.
func (s *scanner) consider(r *rxRule, text []byte, base int, sub []int, note string, atStart, atEnd int) {
	g := 0
	if r.valueFrom > 0 {
		g = -1
		for i := r.valueFrom; 2*i+1 < len(sub); i++ {
			if sub[2*i] >= 0 && sub[2*i+1] > sub[2*i] {
				g = i
				break
			}
		}
		if g < 0 {
			return
		}
	}
	value := text[sub[2*g]:sub[2*g+1]]
	if s.e.allow.allowsValue(value) || r.allow.allowsValue(value) {
		return
	}
	if r.secret && isPlaceholder(value) {
		return
	}
	if r.entropy > 0 && entropy(value[len(tokenPrefix(value)):]) < r.entropy {
		return
	}
	m := match{line: text, sub: sub, secret: value, title: r.title, severity: r.severity}
	if r.check != nil && !r.check(&m) {
		return
	}
	vStart, vEnd := base+sub[2*g], base+sub[2*g+1]
	start, end := vStart, vEnd
	// A match over several lines (a PEM block, key: on one line and its value on the
	// next) is reported from its first line to its last.
	if from := constructStart(text, sub[0], sub[2*g]); from != sub[2*g] {
		start, end = base+from, base+sub[1]
	}
	if note != "" {
		start, end, vStart, vEnd = atStart, atEnd, atStart, atEnd
		m.title += note
	}
	s.raws = append(s.raws, rawFinding{
		rule: r.rule, detector: r.detector, severity: m.severity, msg: m.title,
		start: start, end: end, anchor: vStart, key: string(value), generic: r.generic,
	})
	if r.secret {
		mask := redact(value)
		if note != "" {
			mask = "<base64 " + mask + ">"
		}
		s.spans = append(s.spans, span{start: vStart, end: vEnd, mask: mask})
	}
}

// scanK8sSecrets decodes the data values of Kubernetes Secrets and runs the secret
// detectors on each as "key: value", reporting at the base64 text.
func (s *scanner) scanK8sSecrets(rel string, b []byte) {
	values := k8sSecretValues(b)
	// The base64 text itself looks random: the decoded value is what is judged.
	s.raws = slices.DeleteFunc(s.raws, func(r rawFinding) bool {
		for _, v := range values {
			if r.generic && r.start < v.end && v.start < r.end {
				return true
			}
		}
		return false
	})
	s.spans = slices.DeleteFunc(s.spans, func(sp span) bool {
		for _, v := range values {
			if sp.start < v.end && v.start < sp.end {
				return true
			}
		}
		return false
	})
	for _, v := range values {
		text := v.decoded
		if !strings.ContainsAny(string(v.decoded), "\n") {
			text = []byte(v.key + `: "` + string(v.decoded) + `"`)
		}
		for _, ri := range s.e.secretRx {
			r := s.e.rx[ri]
			if !s.ruleApplies(ri, rel, fileClass{kind: kindConfig}) {
				continue
			}
			for _, sub := range r.re.FindAllSubmatchIndex(text, -1) {
				s.consider(r, text, 0, sub, " (base64 in a Kubernetes Secret)", v.start, v.end)
			}
		}
	}
}

// addRaw records a structural rule's finding at b[start:end].
func (s *scanner) addRaw(rule, detector string, sev Severity, msg string, b []byte, start, end int) {
	s.addRawFrom(rule, detector, sev, msg, b, start, start, end)
}

// addRawFrom records a structural rule's finding at b[start:end], part of a construct that
// begins at from (see constructStart). The fingerprint is of start's line either way, so a
// baseline taken before findings began at their construct still matches.
func (s *scanner) addRawFrom(rule, detector string, sev Severity, msg string, b []byte, from, start, end int) {
	ls, le := lineBounds(b, start)
	s.raws = append(s.raws, rawFinding{
		rule: rule, detector: detector, severity: sev, msg: msg, start: constructStart(b, from, start), end: end,
		anchor: start, key: string(trimSpaceBytes(b[ls:le])),
	})
}

// constructStart is where a finding at start reports from when it is part of a construct
// that begins at from (a statement, a key block): from if that is on an earlier line, so
// the finding points at the line where the construct starts, else start.
func constructStart(b []byte, from, start int) int {
	for from < start && (b[from] == ' ' || b[from] == '\t' || b[from] == '\r' || b[from] == '\n') {
		from++
	}
	if from < start && bytes.IndexByte(b[from:start], '\n') >= 0 {
		return from
	}
	return start
}

// lineBounds returns the start and end (before '\n') of the line holding offset i.
func lineBounds(b []byte, i int) (int, int) {
	ls := bytes.LastIndexByte(b[:i], '\n') + 1
	le := bytes.IndexByte(b[i:], '\n')
	if le < 0 {
		return ls, len(b)
	}
	return ls, i + le
}

func trimSpaceBytes(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
