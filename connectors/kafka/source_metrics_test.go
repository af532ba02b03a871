package kafka

import (
	"testing"

	"github.com/weirstream/weir/runtime"
)

func TestSourceLag(t *testing.T) {
	b := startBroker(t)
	if err := b.CreateTopic("lag", 1); err != nil {
		t.Fatal(err)
	}
	produce(t, b.Addr(), "lag", 50, values("v", 500)...)
	cfg := SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: []string{"lag"}, Deserializer: asString, MaxBytesPerRead: 1}
	s := openSource(t, cfg, task(0, 1), nil)
	if lag := s.SourceLag(); len(lag) != 0 {
		t.Fatalf("lag before the first fetch: %v", lag)
	}
	emitted := 0
	c := runtime.CollectorFunc[string](func(string) { emitted++ })
	if err := s.Read(testCtx(t), c); err != nil {
		t.Fatal(err)
	}
	lag := s.SourceLag()
	if emitted == 0 || emitted == 500 || len(lag) != 1 || lag[0].Partition != "lag/0" || lag[0].Records != int64(500-emitted) {
		t.Fatalf("after reading %d of 500: lag %+v, want lag/0 %d", emitted, lag, 500-emitted)
	}
	for range 1000 {
		if emitted == 500 {
			break
		}
		if err := s.Read(testCtx(t), c); err != nil {
			t.Fatal(err)
		}
	}
	if lag := s.SourceLag(); emitted != 500 || len(lag) != 1 || lag[0].Records != 0 {
		t.Fatalf("after reading %d of 500: lag %+v, want 0", emitted, lag)
	}
}
