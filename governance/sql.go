package governance

import (
	"bytes"
	"strings"
)

// GOV-003: destructive DDL on protected tables in migrations (SQL files under
// migration_paths, DefaultMigrationPaths by default), found by tokenising SQL: comments, string
// literals (with '' and E'\'' escapes) and dollar-quoted bodies are not code, identifiers
// may be schema-qualified and quoted ("public"."users", `users`, [dbo].[users]), and IF
// EXISTS, ONLY, CASCADE are understood. Statements are split at semicolons; a DO block's
// body is tokenised in turn, since it runs when the migration does (a function body does
// not, so it is left alone).

const ruleMigrations = "GOV-003"

type sqlKind uint8

const (
	sqlWord   sqlKind = iota // keyword or bare identifier
	sqlQuoted                // "quoted", `quoted` or [quoted] identifier
	sqlString                // 'literal'
	sqlDollar                // $tag$ body $tag$
	sqlNumber
	sqlPunct
)

type sqlTok struct {
	kind       sqlKind
	start, end int // the token's text; for quoted kinds, without the quotes
}

// qualName is a protected table: schema may be empty (any schema).
type qualName struct{ schema, table string }

func parseQualName(s string) qualName {
	s = strings.ToLower(strings.TrimSpace(s))
	if schema, table, ok := strings.Cut(s, "."); ok {
		return qualName{schema: schema, table: table}
	}
	return qualName{table: s}
}

type sqlState struct {
	toks []sqlTok
}

func (q *sqlState) scan(s *scanner, rel string, b []byte) {
	q.toks = tokenizeSQL(s, b, 0, len(b), q.toks[:0], true)
	if s.e.packs[PackMigrations] && s.e.isMigration(rel) {
		checkStatements(s, b, q.toks, 0)
	}
}

// isMigration reports whether the SQL file at rel is a migration (migration_paths): a
// seed, a test's reset script or an ad-hoc query that truncates a table is not one.
func (e *Engine) isMigration(rel string) bool {
	for _, g := range e.migPaths {
		if matchGlob(g, rel) {
			return true
		}
	}
	return false
}

// tokenizeSQL appends the tokens of b[from:to]; comments are recorded on the scanner
// when record is set.
func tokenizeSQL(s *scanner, b []byte, from, to int, toks []sqlTok, record bool) []sqlTok {
	i := from
	for i < to {
		c := b[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case c == '-' && i+1 < to && b[i+1] == '-':
			j := min(indexByteFrom(b, i, '\n'), to)
			if record {
				s.comments = append(s.comments, span{start: i, end: j})
			}
			i = j
		case c == '/' && i+1 < to && b[i+1] == '*':
			j := sqlCommentEnd(b, i, to)
			if record {
				s.comments = append(s.comments, span{start: i, end: j})
			}
			i = j
		case c == '\'':
			j := sqlStringEnd(b, i+1, to, false)
			toks = append(toks, sqlTok{kind: sqlString, start: i + 1, end: max(i+1, j-1)})
			i = j
		case c == '"' || c == '`':
			j := quotedIdentEnd(b, i, to)
			toks = append(toks, sqlTok{kind: sqlQuoted, start: i + 1, end: j})
			i = min(j+1, to)
		case c == '[':
			j := i + 1
			for j < to && b[j] != ']' && b[j] != '\n' && b[j] != ',' {
				j++
			}
			if j < to && b[j] == ']' {
				toks = append(toks, sqlTok{kind: sqlQuoted, start: i + 1, end: j})
				i = j + 1
			} else {
				toks = append(toks, sqlTok{kind: sqlPunct, start: i, end: i + 1})
				i++
			}
		case c == '$':
			if start, end, next, ok := dollarQuoted(b, i, to); ok {
				toks = append(toks, sqlTok{kind: sqlDollar, start: start, end: end})
				i = next
			} else {
				toks = append(toks, sqlTok{kind: sqlPunct, start: i, end: i + 1})
				i++
			}
		case isIdentByte(c):
			j := i + 1
			for j < to && isIdentByte(b[j]) {
				j++
			}
			// E'...' is an escape string: backslashes escape.
			if j == i+1 && (c == 'E' || c == 'e') && j < to && b[j] == '\'' {
				k := sqlStringEnd(b, j+1, to, true)
				toks = append(toks, sqlTok{kind: sqlString, start: j + 1, end: max(j+1, k-1)})
				i = k
				continue
			}
			kind := sqlWord
			if '0' <= c && c <= '9' {
				kind = sqlNumber
			}
			toks = append(toks, sqlTok{kind: kind, start: i, end: j})
			i = j
		default:
			toks = append(toks, sqlTok{kind: sqlPunct, start: i, end: i + 1})
			i++
		}
	}
	return toks
}

// sqlCommentEnd returns the offset after the block comment at b[i]; Postgres block
// comments nest.
func sqlCommentEnd(b []byte, i, to int) int {
	j, depth := i+2, 1
	for j < to && depth > 0 {
		switch {
		case b[j] == '/' && j+1 < to && b[j+1] == '*':
			depth++
			j += 2
		case b[j] == '*' && j+1 < to && b[j+1] == '/':
			depth--
			j += 2
		default:
			j++
		}
	}
	return j
}

// quotedIdentEnd returns the offset of the quote closing the identifier quoted at b[i]
// ("" or “ inside is an escaped quote), or to.
func quotedIdentEnd(b []byte, i, to int) int {
	q := b[i]
	for j := i + 1; j < to; j++ {
		if b[j] != q {
			continue
		}
		if j+1 < to && b[j+1] == q {
			j++
			continue
		}
		return j
	}
	return to
}

// dollarQuoted reads $tag$ body $tag$ at b[i] (the tag may be empty; $1 is a parameter,
// not a quote) and returns the body and the offset after the closing tag.
func dollarQuoted(b []byte, i, to int) (start, end, next int, ok bool) {
	j := i + 1
	for j < to && isIdentByte(b[j]) && b[j] != '$' {
		j++
	}
	if j >= to || b[j] != '$' || j > i+1 && '0' <= b[i+1] && b[i+1] <= '9' {
		return 0, 0, 0, false
	}
	tag := b[i : j+1]
	end = to
	if k := bytes.Index(b[j+1:to], tag); k >= 0 {
		end = j + 1 + k
	}
	return j + 1, end, min(end+len(tag), to), true
}

// sqlStringEnd returns the offset after the closing quote of a string whose body starts at
// i: ” is an escaped quote, and so is \' in an escape string.
func sqlStringEnd(b []byte, i, to int, backslash bool) int {
	for j := i; j < to; j++ {
		switch b[j] {
		case '\\':
			if backslash {
				j++
			}
		case '\'':
			if j+1 < to && b[j+1] == '\'' {
				j++
				continue
			}
			return j + 1
		}
	}
	return to
}

// sqlStmt is a statement's tokens with the text they index.
type sqlStmt struct {
	b    []byte
	toks []sqlTok
}

func (st sqlStmt) word(i int, w string) bool {
	return i < len(st.toks) && st.toks[i].kind == sqlWord && equalFoldASCII(st.b[st.toks[i].start:st.toks[i].end], w)
}

func (st sqlStmt) punct(i int, c byte) bool {
	return i < len(st.toks) && st.toks[i].kind == sqlPunct && st.b[st.toks[i].start] == c
}

func (st sqlStmt) ident(i int) bool {
	return i < len(st.toks) && (st.toks[i].kind == sqlWord || st.toks[i].kind == sqlQuoted)
}

// name reads a possibly qualified name at i: the parts, lower case, and the index after.
func (st sqlStmt) name(i int) (parts []string, start, end, next int) {
	if !st.ident(i) {
		return nil, 0, 0, i
	}
	start = st.toks[i].start
	if st.toks[i].kind == sqlQuoted {
		start--
	}
	for st.ident(i) {
		t := st.toks[i]
		parts = append(parts, strings.ToLower(string(st.b[t.start:t.end])))
		end = t.end
		if t.kind == sqlQuoted {
			end++
		}
		i++
		if !st.punct(i, '.') {
			break
		}
		i++
	}
	return parts, start, end, i
}

// checkStatements splits toks at semicolons and checks each statement; depth bounds DO
// blocks inside DO blocks.
func checkStatements(s *scanner, b []byte, toks []sqlTok, depth int) {
	stmtStart := 0
	for i := 0; i <= len(toks); i++ {
		if i < len(toks) && !(toks[i].kind == sqlPunct && b[toks[i].start] == ';') {
			continue
		}
		st := sqlStmt{b: b, toks: toks[stmtStart:i]}
		checkStatement(s, st, depth)
		stmtStart = i + 1
	}
}

// blockWords may precede a statement inside a procedural block: BEGIN DROP TABLE ...;
// IF x THEN TRUNCATE ...; ELSE ...; LOOP ...
var blockWords = []string{"begin", "then", "else", "loop", "declare"}

func checkStatement(s *scanner, st sqlStmt, depth int) {
	if len(st.toks) == 0 {
		return
	}
	if st.word(0, "do") && depth < 3 {
		for _, t := range st.toks {
			if t.kind == sqlDollar {
				inner := tokenizeSQL(s, st.b, t.start, t.end, nil, false)
				checkStatements(s, st.b, inner, depth+1)
			}
		}
		return
	}
	for i := 0; i < len(st.toks); i++ {
		if i > 0 && !st.afterBlockWord(i) {
			continue
		}
		switch {
		case st.word(i, "drop") && st.word(i+1, "table"):
			checkDropTable(s, st, st.toks[i].start, i+2)
		case st.word(i, "truncate"):
			checkTruncate(s, st, st.toks[i].start, i+1)
		case st.word(i, "alter") && st.word(i+1, "table"):
			checkAlterTable(s, st, st.toks[i].start, i+2)
		}
	}
}

// afterBlockWord reports whether toks[i] follows one of blockWords.
func (st sqlStmt) afterBlockWord(i int) bool {
	for _, w := range blockWords {
		if st.word(i-1, w) {
			return true
		}
	}
	return false
}

// The checks report at the table or column a statement names, or, when the statement
// began on an earlier line, from its keyword (from) on: a finding points at where the
// statement starts, and its end at the name.

func checkDropTable(s *scanner, st sqlStmt, from, i int) {
	if st.word(i, "if") && st.word(i+1, "exists") {
		i += 2
	}
	for {
		parts, start, end, next := st.name(i)
		if parts == nil {
			return
		}
		if t, ok := s.protectedTable(parts); ok {
			s.addRawFrom(ruleMigrations, "drop-table", SeverityHigh, "DROP TABLE of protected table "+t, st.b, from, start, end)
		}
		if !st.punct(next, ',') {
			return
		}
		i = next + 1
	}
}

func checkTruncate(s *scanner, st sqlStmt, from, i int) {
	if st.word(i, "table") {
		i++
	}
	for {
		if st.word(i, "only") {
			i++
		}
		parts, start, end, next := st.name(i)
		if parts == nil {
			return
		}
		if t, ok := s.protectedTable(parts); ok {
			s.addRawFrom(ruleMigrations, "truncate", SeverityHigh, "TRUNCATE of protected table "+t, st.b, from, start, end)
		}
		if st.punct(next, '*') {
			next++
		}
		if !st.punct(next, ',') {
			return
		}
		i = next + 1
	}
}

// notColumns follow DROP in an ALTER TABLE action without naming a column.
var notColumns = []string{"constraint", "index", "key", "primary", "foreign", "check", "partition", "default", "trigger", "policy", "not", "identity", "expression"}

func checkAlterTable(s *scanner, st sqlStmt, from, i int) {
	if st.word(i, "if") && st.word(i+1, "exists") {
		i += 2
	}
	if st.word(i, "only") {
		i++
	}
	parts, _, _, next := st.name(i)
	if parts == nil {
		return
	}
	table, protected := s.protectedTable(parts)
	if !protected {
		return
	}
	i = next
	if st.punct(i, '*') {
		i++
	}
	// Actions, separated by commas outside parentheses.
	for ; i < len(st.toks); i = nextAction(st, i) {
		col, start, end := st.droppedColumn(i)
		if col != "" {
			s.addRawFrom(ruleMigrations, "drop-column", SeverityHigh,
				"ALTER TABLE ... DROP COLUMN "+col+" of protected table "+table, st.b, from, start, end)
		}
	}
}

// droppedColumn reads an ALTER TABLE action at toks[i]: DROP [COLUMN] [IF EXISTS] name
// returns the column and where its name is; any other action returns "".
func (st sqlStmt) droppedColumn(i int) (col string, start, end int) {
	if !st.word(i, "drop") {
		return "", 0, 0
	}
	j := i + 1
	switch {
	case st.word(j, "column"):
		j++
	case !st.ident(j):
		return "", 0, 0
	default:
		for _, w := range notColumns {
			if st.word(j, w) {
				return "", 0, 0
			}
		}
	}
	if st.word(j, "if") && st.word(j+1, "exists") {
		j += 2
	}
	parts, start, end, _ := st.name(j)
	if parts == nil {
		return "", 0, 0
	}
	return parts[len(parts)-1], start, end
}

// nextAction returns the index after the next comma at parenthesis depth 0.
func nextAction(st sqlStmt, i int) int {
	depth := 0
	for ; i < len(st.toks); i++ {
		switch {
		case st.punct(i, '('):
			depth++
		case st.punct(i, ')'):
			depth--
		case st.punct(i, ',') && depth == 0:
			return i + 1
		}
	}
	return i
}

// protectedTable matches a name's last two parts (schema, table) against the protected
// list and returns the name as written in the list.
func (s *scanner) protectedTable(parts []string) (string, bool) {
	table := parts[len(parts)-1]
	schema := ""
	if len(parts) > 1 {
		schema = parts[len(parts)-2]
	}
	for _, p := range s.e.protected {
		if p.table == table && (p.schema == "" || p.schema == schema) {
			if schema != "" {
				return schema + "." + table, true
			}
			return table, true
		}
	}
	return "", false
}
