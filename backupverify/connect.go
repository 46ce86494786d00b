package backupverify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultConnectTimeout applies when a DSN sets no connect_timeout.
const DefaultConnectTimeout = 10 * time.Second

// sessionSettings make the text of every value, and so every checksum, independent of the
// server's and the role's defaults, and make format_type and pg_get_*def qualify every
// name with its schema.
var sessionSettings = map[string]string{
	"application_name":   "sluice-backupverify",
	"search_path":        "pg_catalog",
	"DateStyle":          "ISO, MDY",
	"TimeZone":           "UTC",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "1",
	"bytea_output":       "hex",
	"lc_monetary":        "C",
	"statement_timeout":  "0",
}

// parseDSN parses a libpq DSN (URL or key=value) with the defaults of this package.
func parseDSN(dsn string) (*pgx.ConnConfig, error) {
	if strings.TrimSpace(dsn) == "" {
		return nil, fmt.Errorf("%w: empty (want e.g. postgres://user:password@host:5432/dbname)", ErrBadDSN)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgconn redacts the password in its parse errors.
		return nil, fmt.Errorf("%w: %v", ErrBadDSN, err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	return cfg, nil
}

// connect opens a connection with sessionSettings. A readOnly session cannot change the
// database whatever the engine sends: the source and live databases are only read.
func connect(ctx context.Context, dsn string, readOnly bool) (*pgx.Conn, error) {
	cfg, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	for k, v := range sessionSettings {
		cfg.RuntimeParams[k] = v
	}
	if readOnly {
		cfg.RuntimeParams["default_transaction_read_only"] = "on"
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, connectError(ctx, cfg, err)
	}
	return conn, nil
}

// connectError says what went wrong in the user's terms, and never repeats the password.
func connectError(ctx context.Context, cfg *pgx.ConnConfig, err error) error {
	where := Describe(cfg)
	var pgErr *pgconn.PgError
	var netErr *net.OpError
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000"):
		return fmt.Errorf("%w for %s: %s (check the user and password in the DSN)", ErrAuth, where, pgErr.Message)
	case errors.As(err, &pgErr) && pgErr.Code == "3D000":
		return fmt.Errorf("%w: %s: %s (create it, or fix the database name in the DSN)", ErrNoDatabase, where, pgErr.Message)
	case ctx.Err() != nil:
		return fmt.Errorf("connect to %s: %w", where, context.Cause(ctx))
	case pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %s did not answer within the %s connect timeout (is the host right and the server up? "+
			"connect_timeout=SECONDS in the DSN waits longer)", ErrUnreachable, where, cfg.ConnectTimeout)
	case errors.As(err, &dnsErr):
		return fmt.Errorf("%w: %s: unknown host %s", ErrUnreachable, where, dnsErr.Name)
	case errors.As(err, &netErr):
		return fmt.Errorf("%w: %s: %v (is the server running and listening there?)", ErrUnreachable, where, netErr.Err)
	case errors.As(err, &pgErr):
		return fmt.Errorf("connect to %s: %s (SQLSTATE %s)", where, pgErr.Message, pgErr.Code)
	}
	return fmt.Errorf("connect to %s: %w", where, err)
}

// Describe names the database a config points at, without its password:
// "user@host:port/dbname".
func Describe(cfg *pgx.ConnConfig) string {
	host := cfg.Host
	if !strings.HasPrefix(host, "/") {
		host = net.JoinHostPort(host, strconv.Itoa(int(cfg.Port)))
	}
	return fmt.Sprintf("%s@%s/%s", cfg.User, host, cfg.Database)
}

// DescribeDSN is Describe of a DSN, or "(invalid DSN)".
func DescribeDSN(dsn string) string {
	cfg, err := parseDSN(dsn)
	if err != nil {
		return "(invalid DSN)"
	}
	return Describe(cfg)
}

var simpleIdent = regexp.MustCompile(`^[a-z_][a-z0-9_$]*$`)

// qualify renders schema.name for people, quoting only the parts SQL would need quoted.
func qualify(parts ...string) string {
	q := make([]string, len(parts))
	for i, p := range parts {
		if simpleIdent.MatchString(p) {
			q[i] = p
		} else {
			q[i] = pgx.Identifier{p}.Sanitize()
		}
	}
	return strings.Join(q, ".")
}
