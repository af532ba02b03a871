package engine

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestDashboardUsesExportedMetrics checks that the Grafana dashboard is
// valid JSON and queries only metrics the runtime exports, and that the
// README lists every weir metric.
func TestDashboardUsesExportedMetrics(t *testing.T) {
	m := newJobMetrics(&job{g: &Graph{Name: "dashboard"}})
	ch := make(chan *prometheus.Desc, 64)
	jobCollector{m}.Describe(ch)
	m.checkpointDuration.Describe(ch)
	m.checkpointSize.Describe(ch)
	m.commitDuration.Describe(ch)
	close(ch)
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	exported := map[string]bool{}
	for d := range ch {
		exported[fqName.FindStringSubmatch(d.String())[1]] = true
	}

	raw, err := os.ReadFile("../../deploy/grafana/weir-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	used := map[string]bool{}
	name := regexp.MustCompile(`weir_[a-z_]+`)
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, n := range name.FindAllString(tg.Expr, -1) {
				n = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
				if !exported[n] {
					t.Errorf("panel %q queries %s, which the runtime does not export", p.Title, n)
				}
				used[n] = true
			}
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for n := range exported {
		if !used[n] {
			t.Errorf("no dashboard panel shows %s", n)
		}
		if !strings.Contains(string(readme), "`"+n) {
			t.Errorf("README does not list %s", n)
		}
	}
}
