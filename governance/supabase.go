package governance

import (
	"bytes"
	"strings"
)

// GOV-002: a Supabase client created with the service-role key outside server-only code:
// the paths allowed to hold it (admin/ and server/ directories, admin modules such as
// utils/supabase/admin.ts and *.server.ts files by default) and JS/TS files that mark
// themselves server-only (import "server-only", which fails the build of any client
// bundle that imports the file, or a "use server" directive). The file is tokenised (comments skipped,
// identifiers and strings kept) and each createClient(...) call's arguments are checked for
// a service-role reference: an identifier or string naming service_role in any case
// (process.env.SUPABASE_SERVICE_ROLE_KEY, serviceRoleKey, 'service_role'), or a variable
// assigned from one earlier in the file. Calls spread over several lines count; a comment
// or an RLS policy text that mentions service_role does not.

const ruleSupabase = "GOV-002"

var serviceRoleKeywords = []string{"service_role", "servicerole", "service-role"}

// clientFactories create Supabase clients in JS/TS and Python.
var clientFactories = []string{"createClient", "createServerClient", "createBrowserClient", "SupabaseClient", "create_client", "acreate_client"}

type jsTokKind uint8

const (
	jsIdent jsTokKind = iota
	jsString
	jsPunct
)

type jsTok struct {
	kind       jsTokKind
	start, end int
	nl         bool // a newline precedes it
}

func (s *scanner) scanSupabase(rel string, cls fileClass, b []byte) {
	for _, g := range s.e.srPaths {
		if matchGlob(g, rel) {
			return
		}
	}
	s.jsToks = tokenizeLoose(b, cls.kind == kindPython, s.jsToks[:0])
	f := &jsFile{b: b, toks: s.jsToks, aliases: make(map[string]bool)}
	if cls.kind != kindPython && f.serverOnly() {
		return
	}
	for i, t := range f.toks {
		switch {
		case f.punct(t) == '=' && t.end-t.start == 1:
			if lhs := assignedName(f.toks, i, b); lhs != "" && f.exprRefers(i+1) {
				f.aliases[lhs] = true
			}
		case t.kind == jsIdent && isFactory(f.text(t)):
			if open := callParen(f.toks, i+1, b); open >= 0 && f.argsRefer(open) {
				s.addRaw(ruleSupabase, "service-role-client", SeverityHigh,
					"Supabase client with the service-role key outside server-only code (paths "+strings.Join(s.e.srPaths, ", ")+
						`, or import "server-only"): the key bypasses row level security`, b, t.start, f.callEnd(open))
			}
		}
	}
}

// jsFile is a tokenised file and the variables found to hold the service-role key.
type jsFile struct {
	b       []byte
	toks    []jsTok
	aliases map[string]bool
}

func (f *jsFile) text(t jsTok) []byte { return f.b[t.start:t.end] }

// serverOnly reports whether the file marks itself server-only: import "server-only" (or
// a require of it), or a "use server" directive among its first statements.
func (f *jsFile) serverOnly() bool {
	for i, t := range f.toks {
		if t.kind != jsString || t.end-t.start < 2 {
			continue
		}
		switch string(f.b[t.start+1 : t.end-1]) {
		case "server-only":
			if i > 0 && (string(f.text(f.toks[i-1])) == "import" || i > 1 && string(f.text(f.toks[i-2])) == "require") {
				return true
			}
		case "use server":
			if i < 8 && (i == 0 || t.nl || f.punct(f.toks[i-1]) == ';') {
				return true
			}
		}
	}
	return false
}

// callEnd returns the offset after the ) that closes the call whose ( is toks[open], or
// after the ( if it is never closed.
func (f *jsFile) callEnd(open int) int {
	depth := 0
	for j := open; j < len(f.toks); j++ {
		switch f.punct(f.toks[j]) {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return f.toks[j].end
			}
		}
	}
	return f.toks[open].end
}

// punct returns the first byte of a punctuation token, or 0.
func (f *jsFile) punct(t jsTok) byte {
	if t.kind != jsPunct {
		return 0
	}
	return f.b[t.start]
}

// refers reports whether t names the service role: an identifier or string naming it in
// any case, or a variable assigned from one.
func (f *jsFile) refers(t jsTok) bool {
	if t.kind == jsPunct {
		return false
	}
	for _, k := range serviceRoleKeywords {
		if containsFold(f.text(t), k) {
			return true
		}
	}
	return t.kind == jsIdent && f.aliases[string(f.text(t))]
}

// exprRefers reports whether the expression from toks[j] refers to the service role; it
// ends at ; or at a newline outside brackets.
func (f *jsFile) exprRefers(j int) bool {
	depth := 0
	for ; j < len(f.toks); j++ {
		u := f.toks[j]
		if depth == 0 && (u.nl || f.punct(u) == ';') {
			return false
		}
		switch f.punct(u) {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		}
		if f.refers(u) {
			return true
		}
	}
	return false
}

// argsRefer reports whether the arguments of the call whose ( is toks[open] refer to the
// service role.
func (f *jsFile) argsRefer(open int) bool {
	depth := 0
	for j := open; j < len(f.toks); j++ {
		u := f.toks[j]
		switch f.punct(u) {
		case '(':
			depth++
		case ')':
			depth--
		}
		if depth == 0 {
			return false
		}
		if f.refers(u) {
			return true
		}
	}
	return false
}

// callParen returns the index of the ( that calls the function named at toks[i-1],
// stepping over TypeScript type arguments (createClient<Database>(...)), or -1.
func callParen(toks []jsTok, i int, b []byte) int {
	if i < len(toks) && toks[i].kind == jsPunct && b[toks[i].start] == '<' {
		i = skipTypeArgs(toks, i, b)
	}
	if i < len(toks) && toks[i].kind == jsPunct && b[toks[i].start] == '(' {
		return i
	}
	return -1
}

// skipTypeArgs returns the index after the type arguments that start at toks[i] ('<').
func skipTypeArgs(toks []jsTok, i int, b []byte) int {
	depth := 0
	for ; i < len(toks); i++ {
		if toks[i].kind != jsPunct {
			continue
		}
		text := b[toks[i].start:toks[i].end]
		depth += bytes.Count(text, []byte("<")) - bytes.Count(text, []byte(">"))
		if depth <= 0 {
			return i + 1
		}
	}
	return i
}

func isFactory(w []byte) bool {
	for _, f := range clientFactories {
		if string(w) == f {
			return true
		}
	}
	return false
}

// assignedName returns the variable an = at toks[i] assigns: the identifier right after
// const/let/var (skipping a TypeScript annotation), or the identifier just before the =.
func assignedName(toks []jsTok, i int, b []byte) string {
	for j := i - 1; j >= 0 && j >= i-6; j-- {
		if isDeclaration(toks[j], b) {
			if j+1 < i && toks[j+1].kind == jsIdent {
				return string(b[toks[j+1].start:toks[j+1].end])
			}
			return ""
		}
		if toks[j].nl {
			break
		}
	}
	if i > 0 && toks[i-1].kind == jsIdent {
		return string(b[toks[i-1].start:toks[i-1].end])
	}
	return ""
}

func isDeclaration(t jsTok, b []byte) bool {
	if t.kind != jsIdent {
		return false
	}
	switch string(b[t.start:t.end]) {
	case "const", "let", "var":
		return true
	}
	return false
}

// tokenizeLoose splits JS/TS or Python into identifiers, strings and punctuation, skipping
// comments (// and /* */, or # for Python). It is only as exact as GOV-002 needs.
func tokenizeLoose(b []byte, python bool, toks []jsTok) []jsTok {
	nl := false
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '\n':
			nl = true
			i++
			continue
		case c == ' ' || c == '\t' || c == '\r':
			i++
			continue
		case python && c == '#':
			i = indexByteFrom(b, i, '\n')
			continue
		case !python && c == '/' && i+1 < len(b) && b[i+1] == '/':
			i = indexByteFrom(b, i, '\n')
			continue
		case !python && c == '/' && i+1 < len(b) && b[i+1] == '*':
			i = skipUntil(b, i+2, "*/")
			continue
		case c == '"' || c == '\'' || c == '`':
			var j int
			if python {
				j = skipPyString(b, i)
			} else {
				j = skipQuoted(b, i, c, c != '`')
			}
			toks = append(toks, jsTok{kind: jsString, start: i, end: j, nl: nl})
			i = j
		case isIdentByte(c):
			j := i + 1
			for j < len(b) && isIdentByte(b[j]) {
				j++
			}
			toks = append(toks, jsTok{kind: jsIdent, start: i, end: j, nl: nl})
			i = j
		default:
			j := operatorEnd(b, i)
			toks = append(toks, jsTok{kind: jsPunct, start: i, end: j, nl: nl})
			i = j
		}
		nl = false
	}
	return toks
}

// operatorEnd returns the end of the operator at b[i], keeping == === != <= >= => as one
// token, so that = alone is an assignment.
func operatorEnd(b []byte, i int) int {
	j := i + 1
	switch b[i] {
	case '=', '!', '<', '>':
		for j < len(b) && j < i+3 && (b[j] == '=' || b[j] == '>') {
			j++
		}
	}
	return j
}
