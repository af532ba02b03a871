package engine

import (
	"testing"
	"time"
)

// TestWatermarkLagGauge checks the hook the event-time machinery feeds.
func TestWatermarkLagGauge(t *testing.T) {
	j := &job{g: &Graph{Name: "wm"}, done: make(chan struct{})}
	tk := &task{job: j, head: &Node{Name: "op"}, subtask: 1}
	j.tasks = []*task{tk}
	j.metrics = newJobMetrics(j)
	lag := func() (float64, bool) {
		mfs, err := j.metrics.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "weir_watermark_lag_seconds" {
				return mf.Metric[0].GetGauge().GetValue(), true
			}
		}
		return 0, false
	}
	if _, ok := lag(); ok {
		t.Fatal("a watermark lag before any watermark")
	}
	tk.reportWatermark(time.Now().Add(-5 * time.Second).UnixMilli())
	if v, ok := lag(); !ok || v < 5 || v > 60 {
		t.Fatalf("lag %v (present %v), want about 5s", v, ok)
	}
	tk.reportWatermark(MaxWatermark) // end of input
	if v, ok := lag(); ok {
		t.Fatalf("lag %v after the final watermark", v)
	}
}
