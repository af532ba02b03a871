// Package benchmarks holds weir's performance benchmarks: programs under
// cmd/ that measure the engine and, in the same run, a hand-written Go
// program (or a second mode) doing the same work, and print both side by
// side. Machines here are shared and noisy, so the ratio measured within one
// run is what counts.
//
//	go run ./benchmarks/cmd/counting   # core runtime: keyed counting in Pebble-backed state with checkpoints
//	go run ./benchmarks/cmd/counting --s3  # the same with checkpoints local vs on a development S3 server; restore times
//	go run ./benchmarks/cmd/counting --restore --cores 2  # restore of 1M keys from local and S3 checkpoints, at the same and other parallelisms
//	go run ./benchmarks/cmd/kafka      # Kafka → Map → Kafka: exactly-once vs at-least-once; a JSON job vs a plain franz-go loop (--modes json,json-loop)
//	go run ./benchmarks/cmd/postgres   # inserts into PostgreSQL: the exactly-once sink's two modes vs plain pgx
//	go run ./benchmarks/cmd/windows    # event-time windows vs plain Go windows
//	go run ./benchmarks/cmd/scaleout   # one job over 1, 2 and 4 member processes (--group) vs the single-process job
//	go run ./benchmarks/cmd/nexmark    # Nexmark q0–q22 vs reference loops and Flink's and Feldera's published numbers
//
// The package itself has what the programs share (StartCPUProfile).
//
// Package nexmark holds the Nexmark harness: the event generator, the
// reference implementations of the queries and the queries as weir
// pipelines.
package benchmarks
