package metrics

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/sluice-ci/sluice/deploy/proxy"
)

// MaxPromSamples bounds the latency samples rebuilt from a histogram per backend.
const MaxPromSamples = 4096

// DefaultQueries are the queries for the Known metrics over the metrics `sluice router`
// exports. They are templates: {{.Backend}} is the backend's name, {{.Role}} stable or canary,
// {{.Interval}} the analysis interval as a Prometheus duration.
var DefaultQueries = map[string]string{
	Requests:         `sum(increase(` + proxy.MetricRequests + `{backend="{{.Backend}}"}[{{.Interval}}]))`,
	ErrorRate:        ratioQuery(proxy.MetricErrors),
	NullResponseRate: ratioQuery(proxy.MetricEmpty),
	LatencyMean: `sum(rate(` + proxy.MetricDuration + `_sum{backend="{{.Backend}}"}[{{.Interval}}]))` +
		` / sum(rate(` + proxy.MetricDuration + `_count{backend="{{.Backend}}"}[{{.Interval}}]))`,
	LatencyP50: quantileQuery("0.5"),
	LatencyP90: quantileQuery("0.9"),
	LatencyP95: quantileQuery("0.95"),
	LatencyP99: quantileQuery("0.99"),
}

// DefaultSampleQuery gives a histogram's per-bucket counts over the interval, from which
// Prometheus rebuilds latency samples for the rank test.
const DefaultSampleQuery = `sum by (le) (increase(` + proxy.MetricDuration + `_bucket{backend="{{.Backend}}"}[{{.Interval}}]))`

func ratioQuery(counter string) string {
	return `sum(increase(` + counter + `{backend="{{.Backend}}"}[{{.Interval}}]))` +
		` / sum(increase(` + proxy.MetricRequests + `{backend="{{.Backend}}"}[{{.Interval}}]))`
}

func quantileQuery(q string) string {
	return `histogram_quantile(` + q + `, sum by (le) (rate(` + proxy.MetricDuration + `_bucket{backend="{{.Backend}}"}[{{.Interval}}])))`
}

// Prometheus measures the backends with instant queries against a Prometheus server's HTTP
// API at the end of the interval, over the interval.
type Prometheus struct {
	URL string
	// StableName and CanaryName are the backends' names the queries are templated with.
	StableName, CanaryName string
	// Queries maps each metric to measure to its query template.
	Queries map[string]string
	// SampleQuery (a template) returns a histogram's cumulative bucket counts over the
	// interval, one series per "le" label; empty: no latency samples.
	SampleQuery string
	Client      *http.Client
}

// QueryData is what query templates are executed with.
type QueryData struct {
	Backend, Role, Interval string
}

// PromDuration formats d for a range selector, in whole milliseconds.
func PromDuration(d time.Duration) string {
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10) + "ms"
}

// Measure waits d (or until ctx ends), then queries each backend's metrics over the last d.
func (p *Prometheus) Measure(ctx context.Context, d time.Duration) (Pair, error) {
	start := time.Now()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return Pair{}, fmt.Errorf("measure %s: %w", p.URL, ctx.Err())
	case <-t.C:
	}
	end := time.Now()
	var pair Pair
	for _, b := range []struct {
		name, role string
		dst        *Observation
	}{{p.StableName, proxy.RoleStable, &pair.Stable}, {p.CanaryName, proxy.RoleCanary, &pair.Canary}} {
		data := QueryData{Backend: b.name, Role: b.role, Interval: PromDuration(end.Sub(start))}
		o := Observation{Backend: b.name, Start: start, End: end, Values: map[string]float64{}}
		for _, name := range sortedKeys(p.Queries) {
			v, ok, err := p.scalar(ctx, p.Queries[name], data, end)
			if err != nil {
				return Pair{}, fmt.Errorf("metric %s of %s: %w", name, b.name, err)
			}
			if ok {
				o.Values[name] = v
			}
		}
		if p.SampleQuery != "" {
			s, err := p.samples(ctx, data, end)
			if err != nil {
				return Pair{}, fmt.Errorf("latency samples of %s: %w", b.name, err)
			}
			o.Latencies = s
		}
		*b.dst = o
	}
	return pair, nil
}

// promSeries is one element of an instant vector.
type promSeries struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSeries) float() (float64, error) {
	str, ok := s.Value[1].(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", s.Value[1])
	}
	return strconv.ParseFloat(str, 64)
}

// scalar runs a query that must give at most one series; no series or NaN is "no data".
func (p *Prometheus) scalar(ctx context.Context, tmpl string, data QueryData, at time.Time) (float64, bool, error) {
	res, err := p.query(ctx, tmpl, data, at)
	if err != nil {
		return 0, false, err
	}
	switch len(res) {
	case 0:
		return 0, false, nil
	case 1:
	default:
		return 0, false, fmt.Errorf("query returned %d series, want one: aggregate it (e.g. sum(...))", len(res))
	}
	v, err := res[0].float()
	if err != nil {
		return 0, false, err
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false, nil
	}
	return v, true, nil
}

// samples rebuilds latency samples from histogram bucket counts: each observation in a bucket
// becomes the bucket's midpoint (its lower bound for the +Inf bucket), scaled down to at most
// MaxPromSamples.
func (p *Prometheus) samples(ctx context.Context, data QueryData, at time.Time) ([]float64, error) {
	res, err := p.query(ctx, p.SampleQuery, data, at)
	if err != nil {
		return nil, err
	}
	type bucket struct{ le, count float64 }
	var bs []bucket
	for _, s := range res {
		le, err := strconv.ParseFloat(s.Metric["le"], 64)
		if err != nil {
			return nil, fmt.Errorf("series without a numeric le label: %v", s.Metric)
		}
		c, err := s.float()
		if err != nil {
			return nil, err
		}
		if math.IsNaN(c) {
			continue
		}
		bs = append(bs, bucket{le, c})
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	if len(bs) == 0 || bs[len(bs)-1].count <= 0 {
		return nil, nil
	}
	scale := min(1, MaxPromSamples/bs[len(bs)-1].count)
	var out []float64
	lower, prev := 0.0, 0.0
	for _, b := range bs {
		n := int(math.Round((b.count - prev) * scale))
		v := (lower + b.le) / 2
		if math.IsInf(b.le, 1) {
			v = lower
		}
		for range max(n, 0) {
			out = append(out, v)
		}
		lower, prev = b.le, b.count
	}
	return out, nil
}

func (p *Prometheus) query(ctx context.Context, tmpl string, data QueryData, at time.Time) ([]promSeries, error) {
	q, err := render(tmpl, data)
	if err != nil {
		return nil, err
	}
	form := url.Values{"query": {q}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(p.URL, "/")+"/api/v1/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: %w", p.URL, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client(p.Client).Do(req)
	if err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: read: %w", p.URL, err)
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSeries `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("prometheus %s: %s: %w", p.URL, resp.Status, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("prometheus query %q: %s", q, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("prometheus query %q: result type %s, want an instant vector", q, r.Data.ResultType)
	}
	return r.Data.Result, nil
}

func render(tmpl string, data QueryData) (string, error) {
	t, err := template.New("query").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", fmt.Errorf("query template %q: %w", tmpl, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("query template %q: %w", tmpl, err)
	}
	return b.String(), nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
