// Package postgres is an exactly-once sink into PostgreSQL: each record
// becomes SQL statements (inserts, upserts, increments: anything that is
// not idempotent too), and the statements of a checkpoint epoch take effect
// exactly once, in one transaction per subtask, when the checkpoint
// completes. It uses pgx (github.com/jackc/pgx/v5). It has no source: weir
// does not read change streams from PostgreSQL.
//
//	newSink, err := postgres.NewSink(postgres.SinkConfig[Order]{ … })
//	if err != nil { … } // the configuration is checked here, not at 3 a.m.
//	runtime.To(orders, "orders-table", newSink)
//
// # Records
//
// SinkConfig.Statement with SinkConfig.Args sends one statement per record:
//
//	postgres.SinkConfig[Order]{
//		URL:       "postgres://weir@db.example.com/shop?sslmode=verify-full",
//		SinkID:    "orders",
//		Statement: "INSERT INTO orders (order_id, amount_cents) VALUES ($1, $2)",
//		Args:      func(o Order) []any { return []any{o.ID, o.Cents} },
//	}
//
// SinkConfig.Apply queues any number of statements per record on a Batch, which
// the sink sends BatchSize records at a time in one round trip (pgx.Batch).
// Apply cannot read results: the round trip comes later.
//
// # Modes
//
// Prepared (the default, Auto, when the server's max_prepared_transactions
// is above 0). The epoch's statements run in a transaction on the
// subtask's connection. At barrier n the sink adds a row to weir_commits
// (SinkID, subtask, n) and runs PREPARE TRANSACTION '<SinkID>-<subtask>-<n>':
// the epoch is durable and invisible. Commit(n) runs COMMIT PREPARED for
// every prepared epoch up to n. Open after a crash commits what the
// restored checkpoint promised and ROLLBACK PREPARED every other prepared
// transaction of the subtask (found in pg_prepared_xacts), whose records
// the runtime replays. A prepared transaction keeps its row locks until
// Commit, so the next epoch's records are held in memory until then (a
// Commit normally follows its barrier within milliseconds); if the next
// barrier comes first (a checkpoint failed), that epoch is held in the
// checkpoint as in Staged mode, and the next Commit applies both, in
// order. The sink never waits for a lock that only its own Commit would
// release.
//
// Staged (for managed servers without prepared transactions) keeps a
// write-ahead log in the checkpoint, as Flink's GenericWriteAheadSink
// does. The epoch's records stay in memory until the barrier, where they
// go into the state PreCommit returns, as JSON Lines (T must round-trip
// through encoding/json), which the runtime stores durably with the
// checkpoint; the database sees nothing. Commit(n), in one transaction,
// runs the statements of every held epoch up to n (from memory, with no
// decoding) and adds (SinkID, subtask, n) to weir_commits. Open, after a
// restore, applies the held epochs of the restored state the same way,
// decoded from the checkpoint. An epoch whose checkpoint weir_commits
// covers already (its Commit returned, but the runtime could not record
// that before a crash) is skipped, so a repeated Commit changes nothing.
// The epochs of checkpoints that never completed leave no trace: they
// were only in those checkpoints.
//
// The price of Staged is the checkpoint's size: a subtask's state holds
// all of its epoch's records, about their JSON size (90 bytes for a
// 64-byte row; at 100,000 rows a second per subtask and 1 s checkpoints,
// 9 MB a checkpoint), and the sink holds them twice in memory (records and
// JSON) until Commit; after a failed checkpoint, its epoch is in the
// next checkpoint's state too, until a Commit applies both. Prepared keeps
// the epoch in the database instead, and its checkpoint state stays a few
// hundred bytes. Staged also applies an epoch only at Commit, on the job's
// goroutine, where Prepared sends it during the epoch; with the server's
// CPU the limit, both reach about the same rate (see the README), but
// Staged's commits take longer. Shorter checkpoint intervals keep both the
// state and the pause small.
//
// AtLeastOnce commits the epoch's transaction at the barrier; after a crash
// the epochs since the last complete checkpoint are applied again. It
// exists so that tests can show that their checkers see the duplicates.
//
// In Prepared mode a promised epoch whose prepared transaction is gone
// (rolled back by someone else) while weir_commits has no record of its
// commit is ErrDataLoss, which wraps runtime.ErrUnrecoverable: the sink
// never continues with output it knows to be incomplete. A held epoch
// cannot be gone (it is in the checkpoint); Staged mode relies on
// weir_commits instead: a row deleted from it by hand lets a restore apply
// an epoch again. weir_commits keeps, per sink and subtask, the newest
// committed checkpoint (older rows are deleted as newer ones commit): a
// query shows how far the output is.
//
// # Bad records
//
// A record the database rejects for good (a data exception or constraint
// violation, SQLSTATE classes 22 and 23), or that Apply rejects, follows
// SinkConfig.OnBadRecord, named as the Kafka source's decode-error policy:
// Fail (the default) stops the job with a *RecordError naming the
// subtask, the record's position in its epoch, the statement and the
// SQLSTATE, wrapping runtime.ErrUnrecoverable (a restart would replay the
// same record); Skip drops and counts it (BadRecords); DeadLetter writes
// it as JSON, with the error, to SinkConfig.DeadLetterTable in the epoch's
// transaction, so dead letters are exactly-once too. With Skip and
// DeadLetter each round trip runs inside a savepoint, so that a rejected
// record is taken out without losing the rest of the epoch. Any other
// error (a lost connection, a missing table, a syntax error) fails the
// job, which restarts from its last complete checkpoint.
//
// # Connections and security
//
// Each subtask holds two connections (one for the epoch's transaction, one
// for commits), so a sink needs 2 × parallelism connections, plus one per
// prepared epoch in max_prepared_transactions (3 × parallelism leaves
// room for a failed checkpoint). SinkConfig.URL takes what pgx takes: TLS with
// sslmode (require, verify-ca, verify-full, with sslrootcert, sslcert,
// sslkey); the password from the URL, SinkConfig.PasswordFile, PGPASSWORD or
// ~/.pgpass. The password is never logged: the sink logs host, port,
// database, user and whether TLS is on. StatementTimeout (default 1
// minute) bounds every statement, which also ends a wait for a lock held
// by another subtask's prepared epoch after a failed checkpoint: make the
// rows a subtask changes its own (key the stream by them) and no such wait
// arises.
//
// The sink creates weir_commits and the dead-letter table if missing (in
// SinkConfig.Schema if set). (Earlier versions staged epochs in
// weir_staged_epochs and weir_staged_rows; this one does not use them, and
// refuses a checkpoint that promises an epoch staged there.) It counts
// committed and rolled-back epochs for weir_sink_transactions_total
// (runtime.TransactionReporter).
package postgres
