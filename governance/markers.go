package governance

import (
	"regexp"
	"sort"
)

// AI-002: unresolved AI TODO markers. Only comments count (and Python docstrings): a
// marker in a string literal is data, in a Markdown page it is prose. A marker names an AI
// assistant, or is one of the elisions assistants leave in place of code; an ordinary TODO
// is not an AI marker. Examples (sluice:ignore AI-002 the next line documents the markers)
// TODO(ai), FIXME(copilot), AI-TODO, "... existing code ...", "your code goes here".

const ruleMarkers = "AI-002"

var markerKeywords = []string{
	"todo", "fixme", "existing code", "rest of", "remaining code", "goes here", "code here",
	"logic here", "implementation here",
}

var markerRe = regexp.MustCompile(`(?i)` +
	`\b(?:todo|fixme|hack)\s*[(\[:\-]?\s*@?(?:ai|llm|gpt|chatgpt|copilot|claude|cursor|codex|gemini|assistant)\b` +
	`|\bai[-_]?(?:todo|fixme)\b` +
	`|\.{3}\s*(?:existing|rest of(?: the)?|remaining|other|previous|unchanged)\s+(?:code|implementation|logic|methods|functions|imports|handlers)\b` +
	`|\b(?:rest|remainder) of (?:the )?(?:code|implementation|logic|file|function)\s+(?:remains?|stays?|is|goes|unchanged|as before|here)\b` +
	`|\b(?:your|actual|real|the) (?:code|logic|implementation) (?:goes )?here\b` +
	`|\b(?:add|insert|put|implement) (?:your |the |actual |real )?(?:code|logic|implementation) here\b`)

func (s *scanner) scanMarkers(cls fileClass, b []byte) {
	structural := cls.kind == kindBrace || cls.kind == kindPython || cls.kind == kindSQL
	lastLine := -1
	for _, h := range s.hits {
		if s.e.kwFlags[h.kw]&flagMarker == 0 {
			continue
		}
		start := int(h.end - s.e.kwLen[h.kw])
		if start < lastLine {
			continue
		}
		ls, le := lineBounds(b, start)
		lastLine = le
		var cs, ce int // the comment on this line
		if structural {
			c, ok := s.commentAt(start)
			if !ok {
				lastLine = -1 // another hit later on the line may be in a comment
				continue
			}
			cs, ce = max(c.start, ls), min(c.end, le)
		} else {
			cs = lineComment(b[ls:le], cls.comment)
			if cs < 0 {
				continue
			}
			cs += ls
			ce = le
		}
		if loc := markerRe.FindIndex(b[cs:ce]); loc != nil {
			s.addRaw(ruleMarkers, "ai-todo-marker", SeverityMedium,
				"unresolved AI marker: finish the code the assistant left out, or remove the marker",
				b, cs+loc[0], cs+loc[1])
		}
	}
}

// commentAt returns the comment span holding offset i (spans are recorded in order).
func (s *scanner) commentAt(i int) (span, bool) {
	k := sort.Search(len(s.comments), func(k int) bool { return s.comments[k].end > i })
	if k < len(s.comments) && s.comments[k].start <= i {
		return s.comments[k], true
	}
	return span{}, false
}

// lineComment returns where a line comment starts in line, outside quotes, or -1.
func lineComment(line []byte, style commentStyle) int {
	var q byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		if q != 0 {
			switch c {
			case '\\':
				i++
			case q:
				q = 0
			}
			continue
		}
		switch {
		case c == '"' || c == '\'':
			q = c
		case style == commentHash && c == '#':
			return i
		case style == commentDash && c == '-' && i+1 < len(line) && line[i+1] == '-':
			return i
		case style == commentSlash && c == '/' && i+1 < len(line) && (line[i+1] == '/' || line[i+1] == '*'):
			return i
		case style == commentHTML && c == '<' && i+3 < len(line) && string(line[i:i+4]) == "<!--":
			return i
		}
	}
	return -1
}
