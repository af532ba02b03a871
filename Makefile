# weir: the two commands are `make run` (the wordcount example) and
# `make test` (installs what the tests need, then runs them all).

GO ?= go
GOFLAGS_TEST ?= -race -timeout 20m

.PHONY: all build run test test-deps vet bench bench-core bench-nexmark bench-kafka clean

all: build

build:
	$(GO) build ./...
	$(GO) build -o bin/weir ./cmd/weir

run:
	$(GO) run ./examples/wordcount

# test-deps installs the Debian packages some tests use (kcat: a Kafka client
# no one here wrote). Tests that need them skip with a message when absent,
# but CI runs as root and installs them.
test-deps:
	@if ! command -v kcat >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing kcat"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null) \
				|| echo "warning: could not install kcat; its test will be skipped"; \
		else \
			echo "note: kcat not installed and not root; its test will be skipped"; \
		fi; \
	fi
	@if ! command -v chromium >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing chromium (status page browser test)"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
				|| echo "warning: could not install chromium; the browser test will be skipped"; \
		else \
			echo "note: chromium not installed and not root; the browser test will be skipped"; \
		fi; \
	fi

vet:
	$(GO) vet ./...

test: test-deps vet
	$(GO) test $(GOFLAGS_TEST) ./...

bench: bench-core bench-nexmark

bench-core:
	$(GO) run ./benchmarks/cmd/counting

# Quick mode: every query on 2M events, one core, outputs compared line by
# line with the references. The full run (100M events per query) is
# `go run ./benchmarks/cmd/nexmark --full`.
bench-nexmark:
	$(GO) run ./benchmarks/cmd/nexmark --events 2000000 --cores 1

bench-kafka:
	$(GO) run ./benchmarks/cmd/kafka

clean:
	rm -rf bin data results
