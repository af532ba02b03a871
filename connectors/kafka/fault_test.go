package kafka

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/runtime"
)

// TestRetriesLeaderErrors makes the broker answer the first fetches with
// NOT_LEADER_OR_FOLLOWER; the source must refresh metadata, retry, and still
// read every record once.
func TestRetriesLeaderErrors(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "flaky"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	want := values("f", 200)
	produce(t, addr, "flaky", 20, want...)

	var fetches atomic.Int32
	c.ControlKey(int16(kmsg.Fetch), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if fetches.Add(1) > 3 {
			return nil, nil, false
		}
		req := kr.(*kmsg.FetchRequest)
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.Version = req.Version
		for _, rt := range req.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})

	cfg := SourceConfig[string]{Brokers: []string{addr}, Topics: []string{"flaky"}, Deserializer: asString, Mode: StopAtEnd}
	readExactlyOnce(t, drain(t, openSource(t, cfg, task(0, 1), nil)), want)
	if n := fetches.Load(); n <= 3 {
		t.Fatalf("only %d fetches: the injected errors were not exercised", n)
	}
}

// TestFailsAfterRetryTimeout stops the broker under an open source: Read
// keeps returning nil (so barriers flow) until RetryTimeout, then fails.
func TestFailsAfterRetryTimeout(t *testing.T) {
	b := startBroker(t)
	if err := b.CreateTopic("gone", 1); err != nil {
		t.Fatal(err)
	}
	cfg := SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: []string{"gone"}, Deserializer: asString,
		RetryTimeout: 500 * time.Millisecond, DialTimeout: 200 * time.Millisecond}
	s := openSource(t, cfg, task(0, 1), nil)
	_ = b.Close()
	start := time.Now()
	var err error
	reads := 0
	for err == nil && time.Since(start) < 30*time.Second {
		err = s.Read(testCtx(t), runtime.CollectorFunc[string](func(string) {}))
		reads++
	}
	if err == nil || errors.Is(err, runtime.ErrEndOfInput) {
		t.Fatalf("Read did not fail after the broker went away: %v", err)
	}
	if reads < 2 {
		t.Errorf("Read failed on the first attempt (%v); want retries within RetryTimeout", err)
	}
	t.Logf("failed after %d reads, %v: %v", reads, time.Since(start).Round(time.Millisecond), err)
}
