package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// CommitsTable is the table the sink keeps in the database (in the
// connection's search_path): per sink and subtask, the newest committed
// checkpoint (and those of epochs prepared but not yet committed).
const CommitsTable = "weir_commits"

var ddlCommits = `CREATE TABLE IF NOT EXISTS ` + CommitsTable + ` (
	sink_id     text        NOT NULL,
	subtask     integer     NOT NULL,
	checkpoint  bigint      NOT NULL,
	recorded_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (sink_id, subtask, checkpoint))`

func ddlDeadLetter(table string) string {
	return `CREATE TABLE IF NOT EXISTS ` + table + ` (
	sink_id     text        NOT NULL,
	subtask     integer     NOT NULL,
	checkpoint  bigint      NOT NULL,
	position    bigint      NOT NULL,
	statement   text        NOT NULL,
	sqlstate    text        NOT NULL,
	error       text        NOT NULL,
	record      jsonb       NOT NULL,
	recorded_at timestamptz NOT NULL DEFAULT now())`
}

// ensureTables creates the tables the sink needs. Subtasks open
// concurrently, and concurrent CREATE TABLE IF NOT EXISTS can fail on the
// catalog's unique index, so an advisory lock serializes them.
func ensureTables(ctx context.Context, conn *pgx.Conn, ddl []string) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: create tables: %w", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('weir sink tables'))"); err != nil {
		return fmt.Errorf("postgres: create tables: %w", err)
	}
	for _, stmt := range ddl {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("postgres: create tables: %q: %w", abbreviate(stmt), err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: create tables: %w", err)
	}
	return nil
}

// quoteTable quotes a table name, optionally schema-qualified (a.b).
func quoteTable(name string) string {
	return pgx.Identifier(strings.Split(name, ".")).Sanitize()
}
