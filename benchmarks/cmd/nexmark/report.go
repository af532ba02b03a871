package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// flinkPerCore is Flink 1.13's published throughput per core (events/s)
// from the Nexmark README, as issue 14 quotes it; Flink has no q6.
var flinkPerCore = map[string]float64{
	"q0": 155_000, "q1": 157_900, "q2": 175_200, "q3": 152_100, "q4": 34_300, "q5": 22_100, "q7": 12_300,
	"q8": 146_100, "q9": 14_200, "q10": 57_800, "q11": 39_700, "q12": 75_700, "q13": 130_700, "q14": 161_200,
	"q15": 72_400, "q16": 18_700, "q17": 116_800, "q18": 53_700, "q19": 44_000, "q20": 19_000, "q21": 98_500,
	"q22": 130_000,
}

// felderaPerCore is Feldera's published throughput (16-core run) divided
// by 16, as issue 14 quotes it; queries without a figure are absent.
var felderaPerCore = map[string]float64{
	"q0": 436_000, "q1": 412_000, "q2": 422_000, "q4": 265_000, "q5": 412_000, "q7": 196_000, "q8": 415_000,
	"q9": 57_000, "q12": 418_000, "q13": 230_000, "q16": 51_000, "q17": 242_000, "q18": 85_000, "q19": 75_000,
	"q20": 85_000, "q21": 415_000, "q22": 394_000,
}

// Result is one query's line of the report. The JSON field names are also
// the CSV column names.
type Result struct {
	Query                       string   `json:"query"`
	Events                      int64    `json:"events"`
	Cores                       int      `json:"cores"`
	Results                     int64    `json:"results"`
	ElapsedSeconds              float64  `json:"elapsed_seconds"`
	EventsPerSecond             float64  `json:"events_per_second"`
	EventsPerSecondPerCore      float64  `json:"events_per_second_per_core"`
	LatencyP50Ms                float64  `json:"latency_p50_ms"`
	LatencyP99Ms                float64  `json:"latency_p99_ms"`
	LatencySamples              int      `json:"latency_samples"`
	Checkpoints                 int      `json:"checkpoints"`
	CheckpointP99Ms             float64  `json:"checkpoint_p99_ms"`
	ReferenceEventsPerSecond    float64  `json:"reference_events_per_second"`
	RatioToReference            float64  `json:"ratio_to_reference"`
	EngineCPUSeconds            float64  `json:"engine_cpu_seconds"`
	ReferenceCPUSeconds         float64  `json:"reference_cpu_seconds"`
	RatioToReferenceCPU         float64  `json:"ratio_to_reference_cpu"`
	EnginePageFaults            int64    `json:"engine_page_faults"`
	ReferencePageFaults         int64    `json:"reference_page_faults"`
	FlinkEventsPerSecondPerCore *float64 `json:"flink_events_per_second_per_core"`   // null for q6
	RatioToFlink                *float64 `json:"ratio_to_flink"`                     // per core; null for q6
	FelderaPerCore              *float64 `json:"feldera_events_per_second_per_core"` // null where unpublished
	RatioToFeldera              *float64 `json:"ratio_to_feldera"`                   // per core
	OutputMatchesReference      bool     `json:"output_matches_reference"`
	Comparison                  string   `json:"comparison"` // "exact" or "multiset-hash"
	Watermarks                  bool     `json:"watermarks"` // the source assigned event time
	Machine                     string   `json:"machine"`
}

// columns are the CSV columns, in the order of Result's fields.
var columns = []string{
	"query", "events", "cores", "results", "elapsed_seconds", "events_per_second", "events_per_second_per_core",
	"latency_p50_ms", "latency_p99_ms", "latency_samples", "checkpoints", "checkpoint_p99_ms",
	"reference_events_per_second", "ratio_to_reference", "engine_cpu_seconds", "reference_cpu_seconds",
	"ratio_to_reference_cpu", "engine_page_faults", "reference_page_faults",
	"flink_events_per_second_per_core", "ratio_to_flink",
	"feldera_events_per_second_per_core", "ratio_to_feldera",
	"output_matches_reference", "comparison", "watermarks", "machine",
}

func (r Result) row() []string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	opt := func(v *float64) string {
		if v == nil {
			return ""
		}
		return f(round(*v, 3))
	}
	return []string{
		r.Query, strconv.FormatInt(r.Events, 10), strconv.Itoa(r.Cores), strconv.FormatInt(r.Results, 10),
		f(round(r.ElapsedSeconds, 3)), f(math.Round(r.EventsPerSecond)), f(math.Round(r.EventsPerSecondPerCore)),
		f(round(r.LatencyP50Ms, 3)), f(round(r.LatencyP99Ms, 3)), strconv.Itoa(r.LatencySamples),
		strconv.Itoa(r.Checkpoints), f(round(r.CheckpointP99Ms, 3)),
		f(math.Round(r.ReferenceEventsPerSecond)), f(round(r.RatioToReference, 3)),
		f(round(r.EngineCPUSeconds, 3)), f(round(r.ReferenceCPUSeconds, 3)), f(round(r.RatioToReferenceCPU, 3)),
		strconv.FormatInt(r.EnginePageFaults, 10), strconv.FormatInt(r.ReferencePageFaults, 10),
		opt(r.FlinkEventsPerSecondPerCore), opt(r.RatioToFlink), opt(r.FelderaPerCore), opt(r.RatioToFeldera),
		strconv.FormatBool(r.OutputMatchesReference), r.Comparison, strconv.FormatBool(r.Watermarks), r.Machine,
	}
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func resultFiles(dir string) []string {
	return []string{filepath.Join(dir, "results.json"), filepath.Join(dir, "results.csv"), filepath.Join(dir, "results.svg")}
}

// writeResults writes results.json, results.csv and results.svg to dir.
func writeResults(dir string, results []Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := resultFiles(dir)
	js, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(files[0], append(js, '\n'), 0o644); err != nil {
		return err
	}
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.Write(columns)
	for _, r := range results {
		w.Write(r.row())
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	if err := os.WriteFile(files[1], []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(files[2], []byte(chart(results)), 0o644)
}

// printTable prints the results for people.
func printTable(w io.Writer, results []Result) {
	fmt.Fprintf(w, "%-5s %12s %12s %9s %9s %6s %9s %12s %8s %8s %10s %8s %8s %s\n",
		"query", "events/s", "per core", "p50 ms", "p99 ms", "ckpts", "ckpt p99", "reference/s", "vs ref", "(cpu)", "Flink/core", "vs Flink", "vs Feld.", "output")
	for _, r := range results {
		flink, vs, feld := "-", "-", "-"
		if r.FlinkEventsPerSecondPerCore != nil {
			flink = fmt.Sprintf("%.0fK", *r.FlinkEventsPerSecondPerCore/1e3)
			vs = fmt.Sprintf("%.1fx", *r.RatioToFlink)
		}
		if r.RatioToFeldera != nil {
			feld = fmt.Sprintf("%.1fx", *r.RatioToFeldera)
		}
		out := "MISMATCH"
		if r.OutputMatchesReference {
			out = "ok (" + r.Comparison + ")"
		}
		fmt.Fprintf(w, "%-5s %12.0f %12.0f %9.3f %9.3f %6d %9.1f %12.0f %7.2fx %7.2fx %10s %8s %8s %s\n",
			r.Query, r.EventsPerSecond, r.EventsPerSecondPerCore, r.LatencyP50Ms, r.LatencyP99Ms,
			r.Checkpoints, r.CheckpointP99Ms, r.ReferenceEventsPerSecond, r.RatioToReference, r.RatioToReferenceCPU, flink, vs, feld, out)
	}
}

// chart draws, per query, the engine's events/s per core, the reference
// loop's events/s and Flink's and Feldera's published events/s per core as
// bars on a log scale: a hand-written SVG.
func chart(results []Result) string {
	const (
		left, top, bottom, right = 70.0, 40.0, 50.0, 20.0
		plotH                    = 300.0
		barW, gap                = 18.0, 22.0
	)
	groupW := 4*barW + gap
	width := left + right + groupW*float64(len(results)) + gap
	height := top + plotH + bottom
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range results {
		for _, v := range []float64{r.EventsPerSecondPerCore, r.ReferenceEventsPerSecond} {
			if v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
		for _, v := range []*float64{r.FlinkEventsPerSecondPerCore, r.FelderaPerCore} {
			if v != nil {
				lo, hi = math.Min(lo, *v), math.Max(hi, *v)
			}
		}
	}
	if math.IsInf(lo, 0) {
		lo, hi = 1e4, 1e7
	}
	minExp, maxExp := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if maxExp <= minExp {
		maxExp = minExp + 1
	}
	y := func(v float64) float64 {
		if v <= 0 {
			return top + plotH
		}
		f := (math.Log10(v) - minExp) / (maxExp - minExp)
		return top + plotH*(1-math.Max(0, math.Min(1, f)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="20" font-size="13">Nexmark: events/s per core (log scale)</text>`+"\n", left)
	for e := minExp; e <= maxExp; e++ {
		yy := y(math.Pow(10, e))
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/>`+"\n", left, yy, width-right, yy)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, yy+4, siLabel(math.Pow(10, e)))
	}
	colors := []string{"#1f77b4", "#7f7f7f", "#ff7f0e", "#2ca02c"}
	for i, r := range results {
		x0 := left + gap + groupW*float64(i)
		vals := []float64{r.EventsPerSecondPerCore, r.ReferenceEventsPerSecond, 0, 0}
		if r.FlinkEventsPerSecondPerCore != nil {
			vals[2] = *r.FlinkEventsPerSecondPerCore
		}
		if r.FelderaPerCore != nil {
			vals[3] = *r.FelderaPerCore
		}
		for j, v := range vals {
			if v <= 0 {
				continue
			}
			x, yy := x0+barW*float64(j), y(v)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.0f" height="%.1f" fill="%s"><title>%s: %.0f</title></rect>`+"\n",
				x, yy, barW-2, top+plotH-yy, colors[j], r.Query, v)
		}
		label := r.Query
		if !r.OutputMatchesReference {
			label += " ✗"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n", x0+2*barW, top+plotH+16, label)
	}
	for j, name := range []string{"weir (per core)", "reference loop", "Flink 1.13 (per core)", "Feldera (per core)"} {
		x := left + float64(j)*150
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="10" height="10" fill="%s"/>`, x, height-18, colors[j])
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f">%s</text>`+"\n", x+14, height-9, name)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func siLabel(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%gG", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gK", v/1e3)
	}
	return fmt.Sprintf("%g", v)
}
