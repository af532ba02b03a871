package devbrokertest

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/internal/testbin"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Remove()
	os.Exit(code)
}

// partitions returns the partition count of topic in the broker's
// metadata.
func partitions(t *testing.T, addr, topic string) int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, mt)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || len(resp.Topics) != 1 {
		t.Fatalf("metadata of %q: %v", topic, err)
	}
	return len(resp.Topics[0].Partitions)
}

// TestRestartKeepsTopics creates a topic, stops the broker and starts it
// again: on the same address, from its data directory, the topic is still
// there.
func TestRestartKeepsTopics(t *testing.T) {
	b := Start(t, Config{Partitions: 3, DataDir: t.TempDir()})
	addr := b.Addr()
	if err := b.CreateTopic("kept", 5); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateTopic("late", 1); !errors.Is(err, ErrStopped) {
		t.Errorf("CreateTopic on a stopped broker: %v, want ErrStopped", err)
	}
	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	if b.Addr() != addr {
		t.Errorf("restarted on %s, want %s", b.Addr(), addr)
	}
	if n := partitions(t, addr, "kept"); n != 5 {
		t.Errorf("topic kept has %d partitions after the restart, want 5", n)
	}
	if err := b.Restart(); err == nil {
		t.Error("Restart of a running broker succeeded")
	}
}
