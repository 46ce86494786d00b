package backupverify

import (
	"fmt"
	"net/url"
	"strings"
)

// connString is a libpq connection string, URL or key=value, that can be edited and
// rendered again in the same form.
type connString struct {
	url   *url.URL    // URL form
	pairs [][2]string // key=value form, in order
}

func parseConnString(dsn string) (*connString, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			// url's errors quote the whole input: say where, not what.
			return nil, fmt.Errorf("%w: not a valid postgres:// URL", ErrBadDSN)
		}
		return &connString{url: u}, nil
	}
	pairs, err := parsePairs(dsn)
	if err != nil {
		return nil, err
	}
	return &connString{pairs: pairs}, nil
}

// parsePairs follows libpq's conninfo syntax: key = value, a value either bare (ended by
// white space) or single-quoted, with backslash escaping the next character in both.
func parsePairs(s string) ([][2]string, error) {
	var pairs [][2]string
	i := 0
	skipSpace := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
			i++
		}
	}
	for {
		skipSpace()
		if i == len(s) {
			return pairs, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r' {
			i++
		}
		key := s[start:i]
		skipSpace()
		if i == len(s) || s[i] != '=' {
			return nil, fmt.Errorf("%w: missing \"=\" after %q", ErrBadDSN, key)
		}
		i++
		skipSpace()
		var v strings.Builder
		quoted := i < len(s) && s[i] == '\''
		if quoted {
			i++
		}
		closed := !quoted
		for i < len(s) {
			c := s[i]
			if quoted && c == '\'' {
				i++
				closed = true
				break
			}
			if !quoted && (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
				break
			}
			if c == '\\' && i+1 < len(s) {
				i++
				c = s[i]
			}
			v.WriteByte(c)
			i++
		}
		if !closed {
			return nil, fmt.Errorf("%w: unterminated quoted value of %q", ErrBadDSN, key)
		}
		pairs = append(pairs, [2]string{key, v.String()})
	}
}

// takePassword removes the password and returns it.
func (c *connString) takePassword() string {
	if c.url != nil {
		var pw string
		if c.url.User != nil {
			pw, _ = c.url.User.Password()
			if name := c.url.User.Username(); name != "" {
				c.url.User = url.User(name)
			} else {
				c.url.User = nil
			}
		}
		q := c.url.Query()
		if p := q.Get("password"); p != "" {
			pw = p
			q.Del("password")
			c.url.RawQuery = q.Encode()
		}
		return pw
	}
	var pw string
	kept := c.pairs[:0]
	for _, p := range c.pairs {
		if p[0] == "password" {
			pw = p[1]
			continue
		}
		kept = append(kept, p)
	}
	c.pairs = kept
	return pw
}

// setDatabase points the connection string at another database.
func (c *connString) setDatabase(db string) {
	if c.url != nil {
		c.url.Path = "/" + db
		c.url.RawPath = ""
		q := c.url.Query()
		if q.Has("dbname") {
			q.Del("dbname")
			c.url.RawQuery = q.Encode()
		}
		return
	}
	kept := c.pairs[:0]
	for _, p := range c.pairs {
		if p[0] != "dbname" {
			kept = append(kept, p)
		}
	}
	c.pairs = append(kept, [2]string{"dbname", db})
}

func (c *connString) has(key string) bool {
	if c.url != nil {
		return c.url.Query().Has(key)
	}
	for _, p := range c.pairs {
		if p[0] == key {
			return true
		}
	}
	return false
}

func (c *connString) String() string {
	if c.url != nil {
		return c.url.String()
	}
	parts := make([]string, len(c.pairs))
	for i, p := range c.pairs {
		v := strings.ReplaceAll(strings.ReplaceAll(p[1], `\`, `\\`), `'`, `\'`)
		parts[i] = p[0] + "='" + v + "'"
	}
	return strings.Join(parts, " ")
}

// withDatabase is dsn pointed at database db.
func withDatabase(dsn, db string) (string, error) {
	c, err := parseConnString(dsn)
	if err != nil {
		return "", err
	}
	c.setDatabase(db)
	return c.String(), nil
}

// toolConn prepares dsn for a libpq tool (pg_dump, pg_restore): a connection string
// without the password, which would show in the process list, and the environment that
// carries the password and a connect timeout instead.
func toolConn(dsn string) (conninfo string, env []string, err error) {
	c, err := parseConnString(dsn)
	if err != nil {
		return "", nil, err
	}
	if pw := c.takePassword(); pw != "" {
		env = append(env, "PGPASSWORD="+pw)
	}
	if !c.has("connect_timeout") {
		env = append(env, fmt.Sprintf("PGCONNECT_TIMEOUT=%d", int(DefaultConnectTimeout.Seconds())))
	}
	return c.String(), env, nil
}
