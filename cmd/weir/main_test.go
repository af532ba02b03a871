package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/weirstream/weir/internal/devbroker/devbrokertest"
	"github.com/weirstream/weir/internal/kafkatxn"
	"github.com/weirstream/weir/internal/kafkatxn/kafkatest"
	"github.com/weirstream/weir/internal/testbin"
	"github.com/weirstream/weir/weirtest/orders"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Remove()
	os.Exit(code)
}

// buildWeir compiles the command, once per test process.
func buildWeir(t *testing.T) string {
	t.Helper()
	return testbin.Build(t, ".")
}

type result struct {
	code           int
	stdout, stderr string
}

func weir(t *testing.T, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("weir %v: %v", args, err)
	}
	return r
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// startBroker starts a development broker, in a child process.
func startBroker(t *testing.T) *devbrokertest.Broker {
	t.Helper()
	return devbrokertest.Start(t, devbrokertest.Config{})
}

// closedAddr returns an address nothing listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestCLI(t *testing.T) {
	bin := buildWeir(t)

	t.Run("usage", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			code int
			want string
		}{
			{nil, 2, "Commands:"},
			{[]string{"help"}, 0, "produce-orders"},
			{[]string{"nonsense"}, 2, `unknown command "nonsense"`},
			{[]string{"produce-orders"}, 2, "--brokers is required"},
			{[]string{"produce-orders", "--brokers", "x:1", "--count", "abc"}, 2, "invalid value"},
			{[]string{"produce-orders", "--brokers", "x:1", "--duplicate-rate", "1.5"}, 2, "--duplicate-rate must be between 0 and 1"},
			{[]string{"produce-orders", "--brokers", "nocolon"}, 2, "not host:port"},
			{[]string{"verify", "--brokers", "x:1", "--topic", "t", "--seq", "n"}, 2, "--key is required"},
			{[]string{"verify", "--brokers", "x:1", "extra"}, 2, `unexpected argument "extra"`},
			{[]string{"verify", "-h"}, 0, "read_committed"},
			{[]string{"broker", "--partitions", "0"}, 2, "--partitions must be at least 1"},
			{[]string{"broker", "--transactional-id-expiration", "0s"}, 2, "--transactional-id-expiration 0s: want 1ms to"},
			{[]string{"broker", "--group-min-session-timeout", "10s"}, 2, "--group-min-session-timeout 10s: want 100ms to 6s"},
		} {
			r := weir(t, bin, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("weir %v: want exit %d and stderr containing %q, got %v", tc.args, tc.code, tc.want, r)
			}
		}
	})

	t.Run("unreachable broker", func(t *testing.T) {
		addr := closedAddr(t)
		for _, args := range [][]string{
			{"produce-orders", "--brokers", addr, "--dial-timeout", "1s"},
			{"verify", "--brokers", addr, "--topic", "t", "--key", "k", "--seq", "n", "--dial-timeout", "1s"},
		} {
			start := time.Now()
			r := weir(t, bin, args...)
			if r.code != 1 || !strings.Contains(r.stderr, "cannot reach Kafka broker "+addr) || !strings.Contains(r.stderr, "weir broker") {
				t.Errorf("weir %v: want exit 1 naming the broker and what to do, got %v", args, r)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("weir %v took %v to fail", args, d)
			}
		}
	})

	t.Run("produce then verify", func(t *testing.T) {
		b := startBroker(t)
		r := weir(t, bin, "produce-orders", "--brokers", b.Addr(), "--topic", "clean", "--count", "500", "--customers", "20", "--duplicate-rate", "0", "--seed", "7")
		if r.code != 0 || !strings.Contains(r.stdout, "500 unique orders, 0 duplicates") {
			t.Fatalf("produce-orders: %v", r)
		}
		verifyArgs := []string{"verify", "--brokers", b.Addr(), "--topic", "clean", "--key", "customer", "--seq", "order_id", "--expect", "500"}
		if r := weir(t, bin, verifyArgs...); r.code != 0 || !strings.Contains(r.stdout, "duplicates: 0") || !strings.HasSuffix(r.stdout, "OK\n") {
			t.Fatalf("verify of a clean topic: %v", r)
		}

		// Inject one exact duplicate of an order already in the topic.
		gen, _ := orders.Generate(7, 500, 20, 0)
		dup, _ := json.Marshal(gen[41])
		w := &kafkago.Writer{Addr: kafkago.TCP(b.Addr()), Topic: "clean", Balancer: &kafkago.Hash{}}
		if err := w.WriteMessages(context.Background(), kafkago.Message{Key: []byte(gen[41].OrderID), Value: dup}); err != nil {
			t.Fatal(err)
		}
		w.Close()
		r = weir(t, bin, verifyArgs...)
		if r.code != 1 || !strings.Contains(r.stdout, "duplicates: 1\n") || !strings.Contains(r.stdout, `order_id="o-000042"`) ||
			!strings.Contains(r.stdout, "501 records, expected 500 (MISMATCH)") || !strings.HasSuffix(r.stdout, "FAIL\n") {
			t.Fatalf("verify after injecting a duplicate: %v", r)
		}
	})

	t.Run("duplicates are reported", func(t *testing.T) {
		b := startBroker(t)
		gen, err := orders.Generate(3, 300, 10, 0.1)
		if err != nil {
			t.Fatal(err)
		}
		_, wantDups := orders.Count(gen)
		r := weir(t, bin, "produce-orders", "--brokers", b.Addr(), "--count", "300", "--customers", "10", "--duplicate-rate", "0.1", "--seed", "3")
		if want := fmt.Sprintf("300 unique orders, %d duplicates", wantDups); r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("produce-orders: want %q, got %v", want, r)
		}
		r = weir(t, bin, "verify", "--brokers", b.Addr(), "--topic", "orders", "--key", "customer", "--seq", "order_id")
		if want := fmt.Sprintf("duplicates: %d\n", wantDups); r.code != 1 || !strings.Contains(r.stdout, want) || strings.Count(r.stdout, "again at") != min(wantDups, 10) {
			t.Fatalf("verify: want exit 1 with %q and at most 10 offenders, got %v", want, r)
		}
	})

	t.Run("numeric gaps", func(t *testing.T) {
		b := startBroker(t)
		w := &kafkago.Writer{Addr: kafkago.TCP(b.Addr()), Topic: "seq", Balancer: &kafkago.Hash{}, AllowAutoTopicCreation: true}
		var msgs []kafkago.Message
		for _, n := range []int{0, 1, 2, 5, 6} { // 3 and 4 are missing
			msgs = append(msgs, kafkago.Message{Key: []byte("s1"), Value: fmt.Appendf(nil, `{"sensor":"s1","n":%d}`, n)})
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
		w.Close()
		r := weir(t, bin, "verify", "--brokers", b.Addr(), "--topic", "seq", "--key", "sensor", "--seq", "n", "--numeric")
		if r.code != 1 || !strings.Contains(r.stdout, "gaps: 1 (2 missing)") || !strings.Contains(r.stdout, `sensor="s1" missing n 3..4`) {
			t.Fatalf("verify: %v", r)
		}
	})

	t.Run("broker subcommand with data dir", func(t *testing.T) {
		b := devbrokertest.Start(t, devbrokertest.Config{DataDir: t.TempDir()})
		r := weir(t, bin, "produce-orders", "--brokers", b.Addr(), "--count", "200", "--duplicate-rate", "0")
		if r.code != 0 {
			t.Fatalf("produce-orders: %v", r)
		}
		stopBrokerCmd(t, b)
		if err := b.Restart(); err != nil {
			t.Fatal(err)
		}
		r = weir(t, bin, "verify", "--brokers", b.Addr(), "--topic", "orders", "--key", "customer", "--seq", "order_id", "--expect", "200")
		if r.code != 0 {
			t.Fatalf("verify after broker restart: %v", r)
		}
		stopBrokerCmd(t, b)
	})
}

func TestBrokerTransactionalIDExpiration(t *testing.T) {
	b := devbrokertest.Start(t, devbrokertest.Config{DataDir: t.TempDir(), TransactionalIDExpiration: 100 * time.Millisecond})
	addr := b.Addr()
	defer stopBrokerCmd(t, b)
	p, err := kafkatxn.New(t.Context(), kafkatxn.Config{Brokers: []string{addr}, TransactionalID: "idle",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	kafkatest.WaitForgotten(t, []string{addr}, "idle") // in 30s, not 7 days
}

// stopBrokerCmd stops "weir broker" (devbrokertest runs the command) with
// SIGTERM and checks that it exits 0 after logging its shutdown.
func stopBrokerCmd(t *testing.T, b *devbrokertest.Broker) {
	t.Helper()
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if log := b.Log(); !strings.Contains(log, "weir broker stopping") {
		t.Errorf("weir broker did not log its shutdown:\n%s", log)
	}
}
