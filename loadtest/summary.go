package loadtest

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Summary is what a run measured, read from the data k6 passes to handleSummary. Durations
// of requests are in milliseconds, as k6 reports them.
type Summary struct {
	Requests    float64 // http_reqs
	RequestRate float64 // http_reqs per second
	// http_req_duration statistics, milliseconds.
	DurationAvg float64
	DurationP50 float64
	DurationP90 float64
	DurationP95 float64
	DurationP99 float64
	DurationMax float64

	ErrorRate    float64 // http_req_failed rate
	ChecksPassed float64
	ChecksFailed float64
	Iterations   float64
	VUsMax       float64
	TestDuration time.Duration
	// Thresholds, sorted by metric then expression.
	Thresholds []Threshold
	// Metrics holds every metric's values as k6 reported them ("http_req_duration" ->
	// {"p(95)": 12.3, ...}).
	Metrics map[string]Metric
}

// Metric is one k6 metric of the summary.
type Metric struct {
	Type     string             // counter, gauge, rate, trend
	Contains string             // time, data or default
	Values   map[string]float64 // "avg", "p(95)", "rate", "count", ...
}

// Threshold is one threshold expression and its verdict.
type Threshold struct {
	Metric     string // "http_req_duration" or a sub-metric "http_req_duration{status:200}"
	Expression string // "p(95)<500"
	OK         bool
	// Observed is the metric's value the expression compares ("p(95)" of the metric), when
	// the summary holds it.
	Observed    float64
	HasObserved bool
	Unit        string // "ms" for time metrics
}

// String renders the threshold for messages: "http_req_duration p(95)<500 (p(95)=612.3ms)".
func (t Threshold) String() string {
	s := t.Metric + " " + t.Expression
	if t.HasObserved {
		s += fmt.Sprintf(" (%s=%s%s)", aggregation(t.Expression), formatValue(t.Observed), t.Unit)
	}
	return s
}

// Crossed returns the thresholds that failed.
func (s *Summary) Crossed() []Threshold {
	var out []Threshold
	for _, t := range s.Thresholds {
		if !t.OK {
			out = append(out, t)
		}
	}
	return out
}

// summaryData is the part of k6's handleSummary data the engine reads.
type summaryData struct {
	State struct {
		TestRunDurationMs float64 `json:"testRunDurationMs"`
	} `json:"state"`
	Metrics map[string]struct {
		Type       string             `json:"type"`
		Contains   string             `json:"contains"`
		Values     map[string]float64 `json:"values"`
		Thresholds map[string]struct {
			OK bool `json:"ok"`
		} `json:"thresholds"`
	} `json:"metrics"`
}

// ParseSummary reads the JSON of k6's handleSummary data (not the legacy --summary-export
// format, whose threshold booleans mean the opposite).
func ParseSummary(data []byte) (*Summary, error) {
	var d summaryData
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("parse the k6 summary: %w", err)
	}
	if d.Metrics == nil {
		return nil, fmt.Errorf("parse the k6 summary: no metrics (is this handleSummary data?)")
	}
	s := &Summary{
		Metrics:      make(map[string]Metric, len(d.Metrics)),
		TestDuration: time.Duration(d.State.TestRunDurationMs * float64(time.Millisecond)),
	}
	for name, m := range d.Metrics {
		s.Metrics[name] = Metric{Type: m.Type, Contains: m.Contains, Values: m.Values}
		unit := ""
		if m.Contains == "time" {
			unit = "ms"
		}
		for expr, v := range m.Thresholds {
			t := Threshold{Metric: name, Expression: expr, OK: v.OK, Unit: unit}
			t.Observed, t.HasObserved = m.Values[aggregation(expr)]
			s.Thresholds = append(s.Thresholds, t)
		}
	}
	sort.Slice(s.Thresholds, func(i, j int) bool {
		a, b := s.Thresholds[i], s.Thresholds[j]
		if a.Metric != b.Metric {
			return a.Metric < b.Metric
		}
		return a.Expression < b.Expression
	})
	value := func(metric, key string) float64 { return s.Metrics[metric].Values[key] }
	s.Requests, s.RequestRate = value("http_reqs", "count"), value("http_reqs", "rate")
	s.DurationAvg, s.DurationMax = value("http_req_duration", "avg"), value("http_req_duration", "max")
	s.DurationP50, s.DurationP90 = value("http_req_duration", "med"), value("http_req_duration", "p(90)")
	s.DurationP95, s.DurationP99 = value("http_req_duration", "p(95)"), value("http_req_duration", "p(99)")
	s.ErrorRate = value("http_req_failed", "rate")
	s.ChecksPassed, s.ChecksFailed = value("checks", "passes"), value("checks", "fails")
	s.Iterations = value("iterations", "count")
	s.VUsMax = value("vus_max", "value")
	return s, nil
}

// formatValue shows a measured value with the precision a reader needs: 4 significant
// digits, no exponent for large values.
func formatValue(v float64) string {
	if math.Abs(v) >= 1000 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// aggregation is the left side of a threshold expression: "p(95)" of "p(95) < 500".
func aggregation(expr string) string {
	if i := strings.IndexAny(expr, "<>=!"); i >= 0 {
		expr = expr[:i]
	}
	return strings.TrimSpace(expr)
}
