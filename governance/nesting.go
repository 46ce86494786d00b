package governance

import (
	"bytes"
	"fmt"
	"strings"
)

// AI-001: control flow nested too deep, measured on the code's structure. Brace languages
// are tokenised (comments, strings, template literals, regex literals and char literals
// skipped) and every block is classified by its header: a control-flow block (if, else,
// for, while, switch, try/catch, do, and each language's own: select, match, when, loop,
// guard, foreach) adds a level, a function or class body starts again from zero (as ESLint's
// max-depth counts), any other block (object literal, plain block) keeps its parent's
// level. else-if chains and catch/finally sit at the level of their if and try. Bodies
// without braces (if (a) if (b) x();) count too. Python is measured on indentation of
// logical lines. A reader sees a function's top-level statements one by one: each (an if
// with its else-ifs and else, a try with its catches, a loop, a switch) with what is
// nested in it is one construct, reported once when any block of it reaches the limit:
// from its keyword to its end, naming its deepest block. Its severity grows with the depth
// past the limit (nestSeverity).

const ruleNesting = "AI-001"

// braceLang describes the lexical details of a brace language.
type braceLang struct {
	charLits     bool // 'x' is a character literal, not a string
	lifetimes    bool // Rust: 'a is a lifetime
	rawBacktick  bool // Go: `raw string`
	templates    bool // JS/TS: `template ${expr}`
	regexLits    bool // JS/TS: /regex/
	tripleQuote  bool // """text block"""
	verbatim     bool // C#: @"verbatim"
	hashComments bool // PHP: # comment
	noParens     bool // Go, Rust, Swift: if cond { without parentheses
	arrowDash    bool // Java, Kotlin: (x) -> { lambda
	fatArrow     bool // JS, C#, Scala, Dart: (x) => { lambda (not Rust's match arms)
}

func init() {
	langJava.arrowDash, langJava.fatArrow = true, true
	langJS.fatArrow, langCSharp.fatArrow, langDart.fatArrow = true, true, true
}

type frameKind uint8

const (
	frameOther frameKind = iota
	frameCond
	frameFunc
	frameTemplate // a ${...} of a template literal
)

type nestFrame struct {
	kind    frameKind
	virtual bool   // a braceless body: ends with its statement
	depth   int32  // control-flow depth inside this frame
	basePD  int32  // paren depth at the frame's start
	kw      string // cond frames: the keyword
	rep     int32  // the construct this frame is part of (see nestReport), or -1
}

// nestReport is a construct: a control-flow statement at the top of a function body (an
// if with its else-ifs and else, a try with its catches and finally, a loop, a switch) and
// all that is nested in it. It is one AI-001 finding when a block in it reaches the limit,
// however many do. start and end are its keyword, close where its last block ends; at is
// the keyword of its deepest block, chain the keywords down to it.
type nestReport struct {
	start, end int
	close      int
	max        int32 // depth of the deepest block
	blocks     int   // blocks at the limit
	at         int
	chain      string
}

// lastCond is the control-flow block that closed last: an else, else if, catch or finally
// right after it continues its construct.
type lastCond struct {
	frames int // the frame stack's length once it closed
	depth  int32
	rep    int32
}

// nestState is a scanner's reusable state for AI-001.
type nestState struct {
	frames  []nestFrame
	parens  []parenInfo
	reports []nestReport
	py      []pyFrame
}

type parenInfo struct {
	header bool // the ( right after a control keyword: its ) ends the header
}

// token classes of the brace scanner's "previous token".
type prevTok uint8

const (
	prevNone prevTok = iota
	prevIdent
	prevCondKw
	prevFuncKw
	prevRParen
	prevArrow
	prevOpen  // ( [ { , ; = and other operators after which a regex literal may start
	prevValue // a string, number, ) ] or } after which / divides
)

// condKeyword returns the control keyword w is in lang, or "".
func condKeyword(w []byte, lang *braceLang) string {
	switch string(w) {
	case "if":
		return "if"
	case "else":
		return "else"
	case "for":
		return "for"
	case "while":
		return "while"
	case "switch":
		if lang != langRust {
			return "switch"
		}
	case "do":
		if lang != langGo && lang != langRust {
			return "do"
		}
	case "try":
		if lang != langGo && lang != langRust && lang != langSwift {
			return "try"
		}
	case "catch":
		if lang != langGo && lang != langRust {
			return "catch"
		}
	case "finally":
		if lang != langGo && lang != langRust && lang != langSwift {
			return "finally"
		}
	case "select":
		if lang == langGo {
			return "select"
		}
	case "match":
		if lang == langRust || lang == langJava || lang == langPHP {
			return "match"
		}
	case "when":
		if lang == langJava {
			return "when"
		}
	case "loop":
		if lang == langRust {
			return "loop"
		}
	case "guard":
		if lang == langSwift {
			return "guard"
		}
	case "repeat":
		if lang == langSwift {
			return "repeat"
		}
	case "foreach":
		if lang == langCSharp || lang == langPHP {
			return "foreach"
		}
	}
	return ""
}

// funcKeyword reports whether w starts a function or type body in lang, where the count
// of control-flow depth starts again (class is an identifier in Go, def one in JS).
func funcKeyword(w []byte, lang *braceLang) bool {
	switch string(w) {
	case "function":
		return lang == langJS || lang == langPHP
	case "func":
		return lang == langGo || lang == langSwift
	case "fn", "impl", "mod":
		return lang == langRust
	case "fun", "def", "object":
		return lang == langJava // Kotlin, Scala, Groovy
	case "class":
		return lang != langGo && lang != langRust
	case "struct":
		return lang == langGo || lang == langC || lang == langCSharp || lang == langRust || lang == langSwift
	case "interface":
		return lang == langGo || lang == langJS || lang == langJava || lang == langCSharp || lang == langPHP
	case "enum":
		return lang != langGo
	case "trait":
		return lang == langRust || lang == langPHP || lang == langJava
	case "namespace":
		return lang == langC || lang == langCSharp || lang == langJS || lang == langPHP
	case "extension":
		return lang == langSwift || lang == langDart
	case "protocol":
		return lang == langSwift
	case "union":
		return lang == langC || lang == langRust
	}
	return false
}

// headerless: control keywords whose body follows at once (else {, try {, do {).
func headerless(kw string) bool {
	switch kw {
	case "else", "try", "do", "finally", "repeat", "loop":
		return true
	}
	return false
}

// regexAfterWord: words after which / starts a regex literal in JS.
func regexAfterWord(w []byte) bool {
	switch string(w) {
	case "return", "typeof", "case", "do", "else", "in", "of", "new", "delete", "void",
		"throw", "instanceof", "yield", "await":
		return true
	}
	return false
}

func isIdentByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '$' || c >= 0x80
}

// braceScan is the state of one brace-language scan.
type braceScan struct {
	n       *nestState
	s       *scanner
	b       []byte
	lang    *braceLang
	limit   int32
	pd      int32 // open ( and [
	prev    prevTok
	stmtKw  string // the last control keyword of the current statement
	stmtFn  bool   // the current statement declares a function or type
	pending string // a control header just ended: the next token is its body
	kwPos   int    // offset of stmtKw
	dot     bool   // the previous token was '.'
	pos     int    // offset of the token being read
	elseIf  bool   // the if being read follows an else
	last    lastCond
}

func (n *nestState) scanBrace(s *scanner, b []byte, lang *braceLang) {
	n.frames = append(n.frames[:0], nestFrame{rep: -1})
	n.parens = n.parens[:0]
	n.reports = n.reports[:0]
	st := &braceScan{n: n, s: s, b: b, lang: lang, limit: int32(s.e.nesting), last: lastCond{frames: -1}}
	st.run()
	st.flushReports()
}

func (st *braceScan) top() *nestFrame { return &st.n.frames[len(st.n.frames)-1] }

func (st *braceScan) atStmtLevel() bool { return st.pd == st.top().basePD }

// push opens a frame of kind at keyword kw (offset pos).
func (st *braceScan) push(kind frameKind, kw string, pos int, virtual bool) {
	parent := st.top()
	f := nestFrame{kind: kind, virtual: virtual, basePD: st.pd, kw: kw, rep: parent.rep, depth: parent.depth}
	switch kind {
	case frameCond:
		f.depth = parent.depth + 1
		continues := kw == "else" || kw == "catch" || kw == "finally" || kw == "if" && st.elseIf
		st.elseIf = false
		if f.depth == 1 {
			if continues && st.last.frames == len(st.n.frames) && st.last.depth == 1 && st.last.rep >= 0 {
				f.rep = st.last.rep
			} else {
				f.rep = int32(len(st.n.reports))
				st.n.reports = append(st.n.reports, nestReport{start: pos, end: pos + len(kw)})
			}
		}
		if f.rep >= 0 {
			st.n.reports[f.rep].reach(f.depth, st.limit, pos, func() string { return st.chain(kw) })
		}
	case frameFunc:
		f.depth, f.rep = 0, -1
	case frameTemplate:
		f.basePD = st.pd
	}
	st.n.frames = append(st.n.frames, f)
}

// chain names the control keywords from the enclosing function down to kw.
func (st *braceScan) chain(kw string) string {
	var parts []string
	for i := len(st.n.frames) - 1; i > 0; i-- {
		f := st.n.frames[i]
		if f.kind == frameFunc {
			break
		}
		if f.kind == frameCond {
			parts = append(parts, f.kw)
		}
	}
	var sb strings.Builder
	for i := len(parts) - 1; i >= 0; i-- {
		sb.WriteString(parts[i])
		sb.WriteString(" › ")
	}
	sb.WriteString(kw)
	return sb.String()
}

// pop closes the innermost frame at the current token.
func (st *braceScan) pop() nestFrame {
	f := st.n.frames[len(st.n.frames)-1]
	st.n.frames = st.n.frames[:len(st.n.frames)-1]
	if f.kind != frameCond {
		return f
	}
	st.last = lastCond{frames: len(st.n.frames), depth: f.depth, rep: f.rep}
	if f.rep >= 0 {
		end := st.pos + 1
		if st.b[st.pos] == '\n' {
			end = st.pos
		}
		r := &st.n.reports[f.rep]
		r.close = max(r.close, end)
	}
	return f
}

// popVirtual ends the braceless bodies open at the current paren depth.
func (st *braceScan) popVirtual() {
	for len(st.n.frames) > 1 {
		f := st.top()
		if !f.virtual || f.basePD != st.pd {
			return
		}
		st.pop()
	}
}

func (st *braceScan) endStatement() {
	st.stmtKw, st.stmtFn, st.pending = "", false, ""
}

// bodyToken is called for each token while a control header has just ended: a token that
// can start a statement opens a braceless body; anything else (. , ; and other operators)
// means there was no body after all (a call named like a keyword, do-while's tail).
func (st *braceScan) bodyToken(startsStmt bool, word []byte) {
	kw := st.pending
	st.pending = ""
	if !startsStmt {
		return
	}
	if kw == "else" && string(word) == "if" {
		st.elseIf = true
		return // else if: the if takes the else's place
	}
	st.push(frameCond, kw, st.kwPos, true)
}

func (st *braceScan) run() {
	b := st.b
	for i := 0; i < len(b); {
		c := b[i]
		st.pos = i
		switch {
		case c == '\n':
			st.newline()
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case isIdentByte(c):
			j := i + 1
			for j < len(b) && isIdentByte(b[j]) {
				j++
			}
			st.word(b[i:j], i, st.dot)
			st.dot = false
			i = j
		default:
			st.dot = c == '.'
			i = st.symbol(i)
		}
	}
}

// newline ends a braceless body's statement in languages without semicolons (and in JS
// written without them), once its body has begun.
func (st *braceScan) newline() {
	if st.pending == "" && st.top().virtual && st.atStmtLevel() {
		st.popVirtual()
	}
}

// startBody opens the braceless body a header is waiting for, when a literal starts it.
func (st *braceScan) startBody() {
	if st.pending != "" {
		st.bodyToken(true, nil)
	}
}

// symbol handles the token at b[i] that is not a word or a blank and returns the offset
// after it.
func (st *braceScan) symbol(i int) int {
	b, lang := st.b, st.lang
	c := b[i]
	next := byte(0)
	if i+1 < len(b) {
		next = b[i+1]
	}
	switch {
	case c == '/' && next == '/':
		return st.lineComment(i)
	case c == '/' && next == '*':
		return st.blockComment(i)
	case c == '/' && lang.regexLits && (st.prev == prevOpen || st.prev == prevNone || st.prev == prevCondKw):
		st.startBody()
		st.prev = prevValue
		return skipRegexLit(b, i)
	case c == '#' && lang.hashComments:
		return st.lineComment(i)
	case c == '"' || c == '\'' || c == '`':
		st.startBody()
		st.prev = prevValue
		return st.literal(i)
	case c == '@' && lang.verbatim && next == '"':
		st.prev = prevValue
		return skipVerbatim(b, i+2)
	case c == '(' || c == '[':
		st.openParen(c)
	case c == ')' || c == ']':
		st.closeParen(c)
	case c == '{':
		st.openBrace(i)
	case c == '}' && st.top().kind == frameTemplate:
		st.n.frames = st.n.frames[:len(st.n.frames)-1]
		st.prev = prevValue
		return st.template(i + 1)
	case c == '}':
		st.closeBrace()
	case c == ';':
		st.semicolon()
	case c == '=' && next == '>', c == '-' && next == '>' && lang.arrowDash:
		st.punct(false)
		if c == '-' || lang.fatArrow {
			st.prev = prevArrow
		}
		return i + 2
	case c == '-' && next == '-', c == '+' && next == '+':
		st.punct(true) // ++x and --x can start a statement
		return i + 2
	default:
		st.punct(c == '!' || c == '*' || c == '&' || c == '@')
	}
	return i + 1
}

// literal skips the string, char or template literal at b[i].
func (st *braceScan) literal(i int) int {
	b, lang := st.b, st.lang
	switch c := b[i]; {
	case c == '"' && lang.tripleQuote && i+2 < len(b) && b[i+1] == '"' && b[i+2] == '"':
		return skipUntil(b, i+3, `"""`)
	case c == '\'' && lang.lifetimes:
		return skipRustQuote(b, i)
	case c == '`' && lang.templates:
		return st.template(i + 1)
	case c == '`' && lang.rawBacktick:
		return skipUntil(b, i+1, "`")
	default:
		return skipQuoted(b, i, c, c != '`')
	}
}

func (st *braceScan) openParen(c byte) {
	st.startBody()
	// The ( right after if/for/while/switch/catch holds the header; its ) ends it.
	// Languages without parenthesised headers end theirs at the {.
	header := c == '(' && !st.lang.noParens && st.prev == prevCondKw && st.atStmtLevel() && !headerless(st.stmtKw)
	st.n.parens = append(st.n.parens, parenInfo{header: header})
	st.pd++
	st.prev = prevOpen
}

func (st *braceScan) closeParen(c byte) {
	st.pending = ""
	header := false
	if k := len(st.n.parens); k > 0 {
		header = st.n.parens[k-1].header
		st.n.parens = st.n.parens[:k-1]
		st.pd--
	}
	st.prev = prevValue
	if c == ')' {
		st.prev = prevRParen
	}
	if header && st.atStmtLevel() {
		st.pending = st.stmtKw
	}
}

func (st *braceScan) semicolon() {
	st.pending = ""
	st.prev = prevOpen
	if !st.atStmtLevel() {
		return
	}
	st.popVirtual()
	// Go's if x := f(); x > 0 { keeps its keyword across the semicolon.
	if !(st.lang.noParens && st.stmtKw != "") {
		st.endStatement()
	}
}

// punct handles an operator; startsStmt says whether it can begin a statement.
func (st *braceScan) punct(startsStmt bool) {
	if st.pending != "" {
		st.bodyToken(startsStmt, nil)
	}
	st.prev = prevOpen
}

// word handles an identifier or keyword at offset pos; member is set after a '.', where
// no word is a keyword (k.class, x.match).
func (st *braceScan) word(w []byte, pos int, member bool) {
	kw := ""
	if !member {
		kw = condKeyword(w, st.lang)
	}
	if st.pending != "" {
		st.bodyToken(true, w)
	}
	switch {
	case member:
		st.prev = prevIdent
	case kw != "":
		if st.atStmtLevel() {
			st.stmtKw, st.kwPos, st.stmtFn = kw, pos, false
			if headerless(kw) {
				st.pending = kw
			}
		}
		st.prev = prevCondKw
	case funcKeyword(w, st.lang):
		if st.atStmtLevel() {
			st.stmtFn = true
		}
		st.prev = prevFuncKw
	case st.lang.regexLits && regexAfterWord(w):
		st.prev = prevOpen
	default:
		st.prev = prevIdent
	}
}

func (st *braceScan) openBrace(pos int) {
	kind := frameOther
	kw := ""
	switch {
	case st.pending != "" || st.prev == prevCondKw:
		kind, kw = frameCond, st.stmtKw
		if st.pending != "" {
			kw = st.pending
		}
	case st.lang.noParens && st.stmtKw != "" && st.atStmtLevel() && !st.stmtFn && st.prev != prevArrow:
		kind, kw = frameCond, st.stmtKw
	case st.prev == prevArrow || st.prev == prevFuncKw:
		kind = frameFunc
	case st.stmtFn && st.atStmtLevel():
		kind = frameFunc
	case st.prev == prevRParen:
		kind = frameFunc
	}
	st.pending = ""
	if kind == frameCond {
		st.push(frameCond, kw, st.kwPos, false)
	} else {
		st.push(kind, "", pos, false)
	}
	st.endStatement()
	st.prev = prevOpen
}

func (st *braceScan) closeBrace() {
	st.pending = ""
	// Braceless bodies still open inside the block end with it.
	for len(st.n.frames) > 1 && st.top().virtual {
		st.pop()
	}
	if len(st.n.frames) > 1 {
		closed := st.pop()
		// Parentheses left open inside the block (a misread literal) close with it.
		if st.pd > closed.basePD {
			st.pd = closed.basePD
			st.n.parens = st.n.parens[:st.pd]
		}
		// if (a) for (...) { ... }: the block was the whole body of the braceless if.
		if closed.basePD == st.pd && st.top().virtual && st.top().basePD == st.pd {
			st.popVirtual()
		}
	}
	st.endStatement()
	st.prev = prevValue
}

// template scans a template literal's text from i to its closing backtick, or to a ${,
// where it pushes a template frame and returns to code.
func (st *braceScan) template(i int) int {
	b := st.b
	for i < len(b) {
		switch b[i] {
		case '\\':
			i += 2
			continue
		case '`':
			return i + 1
		case '$':
			if i+1 < len(b) && b[i+1] == '{' {
				st.push(frameTemplate, "", i, false)
				st.prev = prevOpen
				return i + 2
			}
		}
		i++
	}
	return len(b)
}

func (st *braceScan) lineComment(i int) int {
	j := indexByteFrom(st.b, i, '\n')
	st.s.comments = append(st.s.comments, span{start: i, end: j})
	return j
}

func (st *braceScan) blockComment(i int) int {
	j := skipUntil(st.b, i+2, "*/")
	st.s.comments = append(st.s.comments, span{start: i, end: j})
	return j
}

// reach records a block of the construct at depth, whose keyword is at pos; chain names
// the keywords down to it, computed only for a new deepest block.
func (r *nestReport) reach(depth, limit int32, pos int, chain func() string) {
	if depth < limit {
		return
	}
	if depth == limit {
		r.blocks++
	}
	if depth > r.max {
		r.max, r.at, r.chain = depth, pos, chain()
	}
}

func (st *braceScan) flushReports() {
	for _, r := range st.n.reports {
		st.s.addNesting(r, st.limit, st.b)
	}
}

// addNesting records a construct that reaches the limit: at its keyword, ending where its
// last block does.
func (s *scanner) addNesting(r nestReport, limit int32, b []byte) {
	if r.blocks == 0 {
		return
	}
	line := 1 + bytes.Count(b[:r.at], []byte{'\n'})
	s.addRaw(ruleNesting, "nesting-depth", nestSeverity(r.max, limit), nestMessage(r, limit, line), b, r.start, max(r.end, r.close))
}

// nestSeverity grades a construct by its deepest block: at the limit and one level past
// it, info (reported, failing only a gate set to fail on info); two levels past, low; three
// or more, medium. Healthy code reaches the limit now and then (a loop over options, a
// switch, an if in a case); code nested two or three levels past it is what needs a
// rewrite.
func nestSeverity(depth, limit int32) Severity {
	switch {
	case depth >= limit+3:
		return SeverityMedium
	case depth >= limit+2:
		return SeverityLow
	}
	return SeverityInfo
}

func nestMessage(r nestReport, limit int32, line int) string {
	more := ""
	if r.blocks > 1 {
		more = fmt.Sprintf("; %d blocks of it reach %d levels", r.blocks, limit)
	}
	return fmt.Sprintf("control flow nested %d levels deep (%s, line %d)%s; at most %d allowed: return early or extract a function",
		r.max, r.chain, line, more, limit-1)
}

// indexByteFrom returns the index of c in b at or after i, or len(b).
func indexByteFrom(b []byte, i int, c byte) int {
	if j := bytes.IndexByte(b[i:], c); j >= 0 {
		return i + j
	}
	return len(b)
}

// skipUntil returns the offset just past the first end at or after i, or len(b).
func skipUntil(b []byte, i int, end string) int {
	if i >= len(b) {
		return len(b)
	}
	if j := bytes.Index(b[i:], []byte(end)); j >= 0 {
		return i + j + len(end)
	}
	return len(b)
}

// skipQuoted skips a quoted literal starting at b[i] == q, honouring backslash escapes. A
// single-line literal stops at the end of the line, so a stray quote (an apostrophe in JSX
// text) does not swallow the file.
func skipQuoted(b []byte, i int, q byte, singleLine bool) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case q:
			return j + 1
		case '\n':
			if singleLine {
				return j
			}
		}
	}
	return len(b)
}

// skipVerbatim skips a C# @"..." literal body ("" is an escaped quote) from i.
func skipVerbatim(b []byte, i int) int {
	for j := i; j < len(b); j++ {
		if b[j] == '"' {
			if j+1 < len(b) && b[j+1] == '"' {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(b)
}

// skipRustQuote skips a Rust char literal ('x', '\n', '\u{1F600}') or just the quote of a
// lifetime ('a).
func skipRustQuote(b []byte, i int) int {
	if i+1 < len(b) && b[i+1] == '\\' {
		return skipQuoted(b, i, '\'', true)
	}
	// One UTF-8 character, then the closing quote.
	j := i + 1
	if j < len(b) {
		j++
		for j < len(b) && b[j]&0xC0 == 0x80 {
			j++
		}
	}
	if j < len(b) && b[j] == '\'' {
		return j + 1
	}
	return i + 1
}

// skipRegexLit skips a JS regex literal from the / at i: to the closing / outside a
// character class, then its flags. A newline ends it: it was a division after all.
func skipRegexLit(b []byte, i int) int {
	inClass := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '[':
			inClass = true
		case ']':
			inClass = false
		case '/':
			if inClass {
				continue
			}
			j++
			for j < len(b) && isIdentByte(b[j]) { // flags
				j++
			}
			return j
		case '\n':
			return j
		}
	}
	return len(b)
}
