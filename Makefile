# weir: the two commands are `make run` (the wordcount example) and
# `make test` (installs what the tests need, then runs them all).

GO ?= go
# weirfault compiles the fault points of internal/fault in, for the crash
# tests that kill a job at points of the checkpoint protocol; job binaries
# built without it (users') have none. -vet=off: `make vet` ran every
# analyzer on the same files before (see vet).
GOFLAGS_TEST ?= -race -timeout 20m -tags weirfault -vet=off

.PHONY: all build run test test-deps test-repeat soak vet bench bench-core bench-s3 bench-restore bench-windows bench-nexmark bench-kafka bench-scaleout clean

all: build

build:
	$(GO) build ./...
	$(GO) build -o bin/weir ./cmd/weir

run:
	$(GO) run ./examples/wordcount

# test-deps installs the Debian packages some tests use: kcat (a Kafka client
# no one here wrote), chromium (the status page browser test) and postgresql
# (connectors/postgres; its check, the optional third argument, looks for the
# server binaries, which are not on PATH). Tests that
# need them skip with a message when absent, but CI runs as root and installs
# them.
define apt-install
	@if ! $(if $(3),$(3),command -v $(1)) >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing $(1) for $(2)"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null) \
				|| echo "warning: could not install $(1); $(2) will be skipped"; \
		else \
			echo "note: $(1) is not installed and this is not root; $(2) will be skipped"; \
		fi; \
	fi
endef

test-deps:
	$(call apt-install,kcat,the kcat cross-check)
	$(call apt-install,chromium,the browser test)
	$(call apt-install,postgresql,the PostgreSQL sink tests,ls /usr/lib/postgresql/*/bin/initdb)

# vet sees every file once: all packages as the tests build them (race
# detector, tag weirfault), so that vet's compile of each package is the one
# the tests reuse from the build cache instead of a second, non-race compile
# (on a clean machine the compile is about half of `make test`'s CPU: about
# 415 s for the race build alone, 140 s of it benchmarks/nexmark, the package
# and again with its in-package tests, whose queries instantiate the
# engine's generics for their own types); then without the
# tag or the race detector only the packages whose files differ without them
# (internal/fault's and internal/invariants' off.go, statebackend's
# race_off_test.go): every other file is the same either way. The job
# binaries the crash tests run are built without the race detector, from
# their own non-race compile of the packages they import.
# deploy/kubernetes is a module of its own (the Kubernetes API types its test
# decodes the manifests into stay out of weir's dependencies).
# go test then runs no vet of its own (-vet=off): vet ran every analyzer on
# the same files.
VETFLAGS = -race -tags weirfault
PKG_FILES = {{.ImportPath}} {{.GoFiles}} {{.CgoFiles}} {{.TestGoFiles}} {{.XTestGoFiles}}
PLAIN_PKGS = $(shell { $(GO) list -f '$(PKG_FILES)' ./...; $(GO) list $(VETFLAGS) -f '$(PKG_FILES)' ./...; } | sort | uniq -u | cut -d' ' -f1 | sort -u)

vet:
	$(GO) vet $(VETFLAGS) ./...
	$(if $(PLAIN_PKGS),$(GO) vet $(PLAIN_PKGS))
	cd deploy/kubernetes && $(GO) vet ./...

test: test-deps vet
	$(GO) test $(GOFLAGS_TEST) ./...
	cd deploy/kubernetes && $(GO) test ./...

# test-repeat runs the packages with randomized tests N times (default 10),
# each time with a fresh seed, and lists the seeds that failed; rerun one with
# WEIR_TEST_SEED=<seed> go test <package>. Not part of `make test`.
N ?= 10
test-repeat: test-deps
	internal/testseed/repeat.sh $(N)

# soak runs the end-to-end jobs (wordcount, orders, the event-time job)
# through the crash-test kit (weirtest) until SOAK_KILLS kills (default 1000)
# have landed in all, with pauses, crashes at protocol points and a broker
# restart every 20 s, and prints kills, pauses, duplicates and losses per
# job. About 20 minutes on 2 vCPUs; not part of `make test` or CI. Rerun a
# failure with WEIR_TEST_SEED=<seed> make soak.
SOAK_KILLS ?= 1000
soak:
	WEIR_SOAK_KILLS=$(SOAK_KILLS) $(GO) test -tags soak,weirfault -run '^TestSoak$$' -count=1 -timeout 0 -v ./internal/e2e

bench: bench-core bench-windows bench-nexmark

bench-core:
	$(GO) run ./benchmarks/cmd/counting

# Checkpoints in a local directory vs on the development S3 server, side by
# side: throughput, checkpoint duration and bytes, restore of 1M keys.
bench-s3:
	$(GO) run ./benchmarks/cmd/counting --s3

# Restore of 1M keys filled at parallelism 2: from a local checkpoint
# directory and from the development S3 server (into an empty local
# directory), at parallelism 2, 3 and 1; five restores each, medians side by
# side. About a minute.
bench-restore:
	$(GO) run ./benchmarks/cmd/counting --restore --cores 2

bench-windows:
	$(GO) run ./benchmarks/cmd/windows

# Quick mode: every query (q0-q22) on 2M events, one core, outputs compared
# line by line with the references. The full run (100M events per query) is
# `go run ./benchmarks/cmd/nexmark --full`; add --cores 2 for the scaling.
bench-nexmark:
	$(GO) run ./benchmarks/cmd/nexmark --queries all --events 2000000 --cores 1

bench-kafka:
	$(GO) run ./benchmarks/cmd/kafka

# One job over 1 and 2 member processes of a group (--group) vs the
# single-process job, quick mode (under 2 minutes): records/s, cores used
# (members and broker) and CPU µs a record; without --quick: 1M records,
# 1, 2 and 4 members (at load 30: 3.71, 4.46, 4.84 µs; one process 1.66).
# --throughput=false --kills 5: failover of 1 of 2 members, 8 tasks of 1M
# keys (at load 35: p50 7.2 s, p99 9.4 s; 4 tasks at load 27: 4.4 s, 6.9 s).
bench-scaleout:
	$(GO) run ./benchmarks/cmd/scaleout --quick

clean:
	rm -rf bin data results
