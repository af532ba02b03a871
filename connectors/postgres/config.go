package postgres

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/weirstream/weir/runtime"
)

// Mode selects how an epoch is made durable before its checkpoint completes.
type Mode int

const (
	// Auto picks Prepared when the server allows prepared transactions
	// (max_prepared_transactions > 0) and Staged otherwise. It is the
	// default.
	Auto Mode = iota
	// Prepared applies an epoch in one transaction and prepares it (PREPARE
	// TRANSACTION) at the barrier; COMMIT PREPARED makes it visible.
	Prepared
	// Staged holds an epoch's records in the checkpoint (as JSON) at the
	// barrier; when the checkpoint completes, one transaction applies them
	// and records the commit. For servers without prepared transactions
	// (most managed offerings).
	Staged
	// AtLeastOnce commits an epoch's transaction at the barrier: after a
	// crash, the epochs since the last complete checkpoint are applied
	// again. It exists so that tests can show that their checkers detect
	// the duplicates.
	AtLeastOnce
)

func (m Mode) String() string {
	switch m {
	case Auto:
		return "auto"
	case Prepared:
		return "prepared"
	case Staged:
		return "staged"
	case AtLeastOnce:
		return "at-least-once"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// BadRecordPolicy says what to do with a record the database rejects for
// good (a data exception or a constraint violation: SQLSTATE classes 22 and
// 23), or that Apply rejects. The names follow the Kafka source's
// DecodeErrorPolicy. Other errors (a lost connection, a syntax error, a
// missing table) always fail the job: skipping them would drop every record.
type BadRecordPolicy uint8

const (
	// Fail makes the sink fail with a *RecordError. It wraps
	// runtime.ErrUnrecoverable: a restart replays the same record.
	Fail BadRecordPolicy = iota
	// Skip drops the record, logs it, and counts it (BadRecords).
	Skip
	// DeadLetter writes the record, as JSON, with the error, to
	// SinkConfig.DeadLetterTable in the same transaction as the epoch: the
	// dead letters are exactly-once too.
	DeadLetter
)

// Defaults applied by SinkConfig.EnsureDefaults.
const (
	DefaultBatchSize        = 1000
	DefaultStatementTimeout = time.Minute
	DefaultConnectTimeout   = 30 * time.Second
)

var (
	// ErrNoPreparedTransactions reports a server whose
	// max_prepared_transactions is 0 while the sink's Mode is Prepared.
	ErrNoPreparedTransactions = errors.New("postgres: the server does not allow prepared transactions (max_prepared_transactions = 0): " +
		"set max_prepared_transactions in postgresql.conf (at least the sink's parallelism × 3) and restart the server, " +
		"or use Mode Staged (--postgres-mode staged)")
	// ErrDataLoss reports that an epoch a complete checkpoint promised can
	// no longer be found: its prepared transaction is gone and the sink's
	// commit record says it was never committed (someone rolled it back).
	// (An epoch held in the checkpoint, as Staged mode holds them, cannot
	// be gone.) It wraps runtime.ErrUnrecoverable.
	ErrDataLoss = fmt.Errorf("postgres: committed data is missing (%w)", runtime.ErrUnrecoverable)
)

// RecordError is the error of a record the database rejected.
type RecordError struct {
	Subtask    int
	Checkpoint uint64 // the last checkpoint before the record's epoch
	Position   int64  // the record's index in its epoch, from 0
	Statement  string // the statement that failed; empty if Apply failed
	SQLState   string
	Err        error
}

func (e *RecordError) Error() string {
	where := fmt.Sprintf("postgres: subtask %d: record %d of the epoch after checkpoint %d", e.Subtask, e.Position, e.Checkpoint)
	if e.Statement == "" {
		return fmt.Sprintf("%s: Apply: %v", where, e.Err)
	}
	return fmt.Sprintf("%s: statement %q: %v", where, abbreviate(e.Statement), e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

func abbreviate(sql string) string {
	sql = strings.Join(strings.Fields(sql), " ")
	if len(sql) > 200 {
		return sql[:200] + "…"
	}
	return sql
}

// SinkConfig configures a sink of records of type T.
type SinkConfig[T any] struct {
	// URL is the connection string, a URL
	// (postgres://user:pass@host:port/db?sslmode=verify-full) or
	// key=value pairs, as pgx accepts it: TLS through sslmode (disable,
	// allow, prefer, require, verify-ca, verify-full) with sslrootcert,
	// sslcert and sslkey; the standard PG* environment variables fill in
	// what it leaves out (PGHOST, PGPASSWORD, PGSSLMODE, …), and so does
	// ~/.pgpass. Empty: the environment and pgx's defaults alone.
	URL string
	// PasswordFile, if set, holds the password (its first line); it
	// overrides a password in URL or PGPASSWORD. The password is never
	// logged.
	PasswordFile string
	// SinkID names the sink in the database: prepared transactions are
	// '<SinkID>-<subtask>-<checkpoint>', and the commit records carry it. Required: letters, digits, '_', '.', '-', at most
	// 100 bytes; unique to the sink and stable across restarts.
	SinkID string
	// Mode defaults to Auto.
	Mode Mode
	// Schema, if set, is the search_path of the sink's connections: the
	// sink's own tables (CommitsTable, …) and the unqualified names in
	// Statement or Apply resolve there. It must exist.
	Schema string

	// Statement and Args are the simple way to turn a record into SQL: one
	// statement per record, with the arguments Args returns. Set them, or
	// Apply.
	Statement string
	Args      func(rec T) []any
	// Apply queues the statements of rec (any number, for example an
	// insert and an increment) on b. It must be deterministic: it may run
	// again for the same record. An error rejects the record, handled by
	// OnBadRecord.
	Apply func(b *Batch, rec T) error

	// OnBadRecord defaults to Fail.
	OnBadRecord BadRecordPolicy
	// DeadLetterTable receives the rejected records with DeadLetter (it is
	// created if missing, see doc.go).
	DeadLetterTable string

	// BatchSize is the number of records sent in one round trip. Default
	// 1000.
	BatchSize int
	// StatementTimeout bounds every statement (the server's
	// statement_timeout). Default 1 minute.
	StatementTimeout time.Duration
	// ConnectTimeout bounds connecting. Default 30 seconds.
	ConnectTimeout time.Duration
	// Logger overrides the logger given by the runtime in TaskInfo.
	Logger *slog.Logger
}

// EnsureDefaults fills in the zero fields that have defaults and returns cfg.
func (cfg *SinkConfig[T]) EnsureDefaults() *SinkConfig[T] {
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.StatementTimeout == 0 {
		cfg.StatementTimeout = DefaultStatementTimeout
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	return cfg
}

var sinkIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}$`)

// Validate reports the invalid fields of a SinkConfig on which EnsureDefaults
// has run. It does not connect.
func (cfg *SinkConfig[T]) Validate() error {
	var errs []error
	if _, err := pgx.ParseConfig(cfg.URL); err != nil {
		errs = append(errs, fmt.Errorf("URL: %w", err)) // NB: pgx redacts the password
	}
	if !sinkIDPattern.MatchString(cfg.SinkID) {
		errs = append(errs, fmt.Errorf("SinkID %q: want 1 to 100 letters, digits, '_', '.' or '-'", cfg.SinkID))
	}
	switch {
	case cfg.Apply == nil && cfg.Statement == "":
		errs = append(errs, errors.New("set Statement (and Args) or Apply"))
	case cfg.Apply != nil && cfg.Statement != "":
		errs = append(errs, errors.New("set Statement or Apply, not both"))
	case cfg.Statement != "" && cfg.Args == nil:
		errs = append(errs, errors.New("Statement needs Args"))
	}
	if cfg.Mode < Auto || cfg.Mode > AtLeastOnce {
		errs = append(errs, fmt.Errorf("unknown %v", cfg.Mode))
	}
	switch cfg.OnBadRecord {
	case Fail, Skip:
		if cfg.DeadLetterTable != "" {
			errs = append(errs, errors.New("DeadLetterTable set but OnBadRecord is not DeadLetter"))
		}
	case DeadLetter:
		if cfg.DeadLetterTable == "" {
			errs = append(errs, errors.New("OnBadRecord is DeadLetter but DeadLetterTable is empty"))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown OnBadRecord %d", cfg.OnBadRecord))
	}
	if cfg.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("BatchSize %d must be positive", cfg.BatchSize))
	}
	if cfg.StatementTimeout < 0 || cfg.ConnectTimeout < 0 {
		errs = append(errs, errors.New("timeouts must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("postgres: invalid config: %w", err)
	}
	return nil
}

// connConfig parses URL and applies PasswordFile and the timeouts.
func (cfg *SinkConfig[T]) connConfig() (*pgx.ConnConfig, error) {
	cc, err := pgx.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres: URL: %w", err)
	}
	if cfg.PasswordFile != "" {
		pw, err := ReadPasswordFile(cfg.PasswordFile)
		if err != nil {
			return nil, err
		}
		cc.Password = pw
	}
	cc.ConnectTimeout = cfg.ConnectTimeout
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	cc.RuntimeParams["statement_timeout"] = strconv.FormatInt(cfg.StatementTimeout.Milliseconds(), 10)
	cc.RuntimeParams["application_name"] = "weir-" + cfg.SinkID
	if cfg.Schema != "" {
		cc.RuntimeParams["search_path"] = pgx.Identifier{cfg.Schema}.Sanitize()
	}
	return cc, nil
}

// ReadPasswordFile returns the first line of the file at path, for a
// password kept out of the command line and the environment.
func ReadPasswordFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("postgres: password file: %w", err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", fmt.Errorf("postgres: password file %s: the first line is empty", path)
	}
	return pw, nil
}

// describe returns what may be logged of a connection: never the password.
func describe(cc *pgx.ConnConfig) slog.Value {
	return slog.GroupValue(
		slog.String("host", cc.Host),
		slog.Int("port", int(cc.Port)),
		slog.String("database", cc.Database),
		slog.String("user", cc.User),
		slog.Bool("tls", cc.TLSConfig != nil))
}
