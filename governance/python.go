package governance

// Python's AI-001: nesting measured on the indentation of logical lines. A logical line
// spans physical lines inside brackets, after a backslash, and inside triple-quoted
// strings; comments and blank lines do not count. A block header (a line whose first word
// is a compound statement keyword, with a ':' outside brackets) opens a level for the lines
// indented below it; elif/else/except/finally close the block above them and open one at
// the same level, so they sit at the depth of their if or try, and continue its construct.
// def and class start again from zero.

type pyFrame struct {
	indent int
	depth  int32
	rep    int32
	kw     string // a control keyword, or "" for def/class/with/case
	fn     bool
}

type pyScan struct {
	s      *scanner
	b      []byte
	limit  int32
	frames []pyFrame
	reps   []nestReport
	inline pyFrame // a header with its body on its line, just read; indent -1: none
}

// pyLine is what the scan learnt about one logical line.
type pyLine struct {
	indent     int
	kw         string // first word, after async
	kwStart    int
	colon      bool // a ':' outside brackets (the header's)
	bodyInline bool // code after that ':'
	code       bool // anything but comments and blanks
	end        int  // offset after its last code
}

func (n *nestState) scanPython(s *scanner, b []byte) {
	p := &pyScan{s: s, b: b, limit: int32(s.e.nesting), frames: n.py[:0], reps: n.reports[:0], inline: pyFrame{indent: -1}}
	p.frames = append(p.frames, pyFrame{indent: -1, rep: -1, fn: true})
	defer func() { n.py, n.reports = p.frames, p.reps }()
	for i := 0; i < len(b); {
		var ln pyLine
		ln, i = p.logical(i)
		if ln.code {
			p.line(ln)
		}
	}
	for _, r := range p.reps {
		s.addNesting(r, p.limit, b)
	}
}

// logical reads the logical line starting at i and returns it with the offset after it.
func (p *pyScan) logical(i int) (pyLine, int) {
	b := p.b
	n := len(b)
	var ln pyLine
	for i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\f') {
		if b[i] == '\t' {
			ln.indent = (ln.indent/8 + 1) * 8
		} else {
			ln.indent++
		}
		i++
	}
	depth := 0
	first := true
	for i < n {
		c := b[i]
		switch {
		case c == '\n':
			i++
			if depth == 0 {
				return ln, i
			}
			continue
		case c == '\\' && i+1 < n && (b[i+1] == '\n' || b[i+1] == '\r'):
			i = indexByteFrom(b, i, '\n') + 1
			continue
		case c == ' ' || c == '\t' || c == '\r' || c == '\f':
			i++
			continue
		case c == '#':
			j := indexByteFrom(b, i, '\n')
			p.s.comments = append(p.s.comments, span{start: i, end: j})
			i = j
			continue
		}
		if ln.colon && depth == 0 {
			ln.bodyInline = true
		}
		ln.code = true
		switch {
		case c == '"' || c == '\'':
			j := skipPyString(b, i)
			if first {
				// A string statement (a docstring) is documentation: AI-002 reads it.
				p.s.comments = append(p.s.comments, span{start: i, end: j})
			}
			i = j
		case isIdentByte(c):
			i = p.word(i, &ln, first)
		case c == '(' || c == '[' || c == '{':
			depth++
			i++
		case c == ')' || c == ']' || c == '}':
			depth = max(0, depth-1)
			i++
		case c == ':':
			if depth == 0 && !ln.colon && !(i+1 < n && b[i+1] == '=') {
				ln.colon = true
			}
			i++
		default:
			i++
		}
		ln.end = i
		first = false
	}
	return ln, i
}

// word reads the word at b[i] (or the string it prefixes: r"...", f'...') and returns the
// offset after it; the first word of a logical line is its keyword.
func (p *pyScan) word(i int, ln *pyLine, first bool) int {
	b := p.b
	j := identEnd(b, i)
	if j < len(b) && (b[j] == '"' || b[j] == '\'') && j-i <= 2 && pyStringPrefix(b[i:j]) {
		return skipPyString(b, j)
	}
	if !first {
		return j
	}
	ln.kw, ln.kwStart = pyKeyword(b[i:j]), i
	if string(b[i:j]) == "async" {
		k := j
		for k < len(b) && (b[k] == ' ' || b[k] == '\t') {
			k++
		}
		j = identEnd(b, k)
		ln.kw = pyKeyword(b[k:j])
	}
	return j
}

func identEnd(b []byte, i int) int {
	for i < len(b) && isIdentByte(b[i]) {
		i++
	}
	return i
}

// line applies one logical line to the frame stack.
func (p *pyScan) line(ln pyLine) {
	// The block that closes at this line's indent: an elif, else, except or finally here
	// continues its construct.
	prev, found := p.inline, p.inline.indent == ln.indent
	p.inline = pyFrame{indent: -1}
	for len(p.frames) > 1 && p.frames[len(p.frames)-1].indent >= ln.indent {
		if f := p.frames[len(p.frames)-1]; f.indent == ln.indent {
			prev, found = f, true
		}
		p.frames = p.frames[:len(p.frames)-1]
	}
	// The constructs this line is inside end no sooner than it does.
	for _, f := range p.frames {
		if f.rep >= 0 {
			p.reps[f.rep].close = max(p.reps[f.rep].close, ln.end)
		}
	}
	if !ln.colon {
		return
	}
	parent := p.frames[len(p.frames)-1]
	f := pyFrame{indent: ln.indent, depth: parent.depth, rep: parent.rep}
	switch ln.kw {
	case "if", "elif", "else", "for", "while", "try", "except", "finally", "match":
		f.kw = ln.kw
		f.depth = parent.depth + 1
		continues := ln.kw == "elif" || ln.kw == "else" || ln.kw == "except" || ln.kw == "finally"
		if f.depth == 1 {
			if continues && found && prev.depth == 1 && prev.rep >= 0 {
				f.rep = prev.rep
			} else {
				f.rep = int32(len(p.reps))
				p.reps = append(p.reps, nestReport{start: ln.kwStart, end: ln.kwStart + len(ln.kw)})
			}
		}
		if f.rep >= 0 {
			r := &p.reps[f.rep]
			r.close = max(r.close, ln.end)
			r.reach(f.depth, p.limit, ln.kwStart, func() string { return p.chain(ln.kw) })
		}
	case "def", "class":
		f.depth, f.rep, f.fn = 0, -1, true
	case "with", "case":
	default:
		return // a dict entry or an annotation with a colon, not a block header
	}
	if ln.bodyInline {
		p.inline = f // if x: return, then else: on the next line
	} else {
		p.frames = append(p.frames, f)
	}
}

// chain names the control keywords from the enclosing def down to kw.
func (p *pyScan) chain(kw string) string {
	out := ""
	for i := len(p.frames) - 1; i > 0 && !p.frames[i].fn; i-- {
		if p.frames[i].kw != "" {
			out = p.frames[i].kw + " › " + out
		}
	}
	return out + kw
}

// pyKeyword returns w if it is a keyword that opens a block, else "": the scan does not
// allocate a string per line.
func pyKeyword(w []byte) string {
	switch string(w) {
	case "if":
		return "if"
	case "elif":
		return "elif"
	case "else":
		return "else"
	case "for":
		return "for"
	case "while":
		return "while"
	case "try":
		return "try"
	case "except":
		return "except"
	case "finally":
		return "finally"
	case "match":
		return "match"
	case "def":
		return "def"
	case "class":
		return "class"
	case "with":
		return "with"
	case "case":
		return "case"
	}
	return ""
}

func pyStringPrefix(w []byte) bool {
	for _, c := range w {
		switch c {
		case 'r', 'R', 'b', 'B', 'f', 'F', 'u', 'U', 't', 'T':
		default:
			return false
		}
	}
	return true
}

// skipPyString skips a Python string literal (single or triple quoted) starting at b[i].
func skipPyString(b []byte, i int) int {
	q := b[i]
	if i+2 < len(b) && b[i+1] == q && b[i+2] == q {
		for j := i + 3; j+2 < len(b); j++ {
			if b[j] == '\\' {
				j++
				continue
			}
			if b[j] == q && b[j+1] == q && b[j+2] == q {
				return j + 3
			}
		}
		return len(b)
	}
	return skipQuoted(b, i, q, true)
}
