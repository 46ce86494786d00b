package realtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Nginx is a real nginx proxying its Port to the upstream "app" in UpstreamConf.
type Nginx struct {
	*Process
	Bin          string
	Port         int
	UpstreamConf string
	// Args select this instance's prefix, main config and error log for -t and -s reload.
	Args []string
}

// StartNginx starts nginx (one worker) in a temporary directory; upstream is the content of
// the included file holding `upstream app { ... }`.
func StartNginx(t testing.TB, upstream string) *Nginx {
	t.Helper()
	bin := Binary(t, "nginx")
	dir := t.TempDir()
	n := &Nginx{Bin: bin, Port: FreePort(t), UpstreamConf: filepath.Join(dir, "upstream.conf")}
	for _, d := range []string{"tmp", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o777); err != nil {
			t.Fatal(err)
		}
	}
	main := filepath.Join(dir, "nginx.conf")
	writeFile(t, n.UpstreamConf, upstream)
	writeFile(t, main, fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log notice;
events { worker_connections 512; }
http {
	access_log off;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;
	include %[2]s;
	server {
		listen 127.0.0.1:%[3]d;
		location / {
			proxy_pass http://app;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
`, dir, n.UpstreamConf, n.Port))
	n.Args = []string{"-p", dir, "-c", main, "-e", filepath.Join(dir, "logs", "error.log")}
	n.Process = start(t, dir, bin, n.Args...)
	waitFor(t, "nginx", n.Process, dialable(Addr(n.Port)))
	return n
}

// Workers are the pids of the master's worker processes.
func (n *Nginx) Workers(t testing.TB) []int {
	t.Helper()
	pid := n.Cmd.Process.Pid
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		t.Fatalf("nginx workers: %v", err)
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if p, err := strconv.Atoi(f); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// WaitReloaded waits until none of the workers in before is left and a new one serves: nginx
// reloads asynchronously, and until then old workers may still take connections.
func (n *Nginx) WaitReloaded(t testing.TB, before []int) {
	t.Helper()
	waitFor(t, "nginx reload", n.Process, func() bool {
		now := n.Workers(t)
		if len(now) == 0 {
			return false
		}
		for _, p := range now {
			if slices.Contains(before, p) {
				return false
			}
		}
		return true
	})
}

// HAProxy is a real HAProxy proxying its Port to backend "app" of two servers, "blue" (stable)
// and "green" (canary), with its runtime API on Socket.
type HAProxy struct {
	*Process
	Port   int
	Socket string
}

// StartHAProxy starts HAProxy with blue at weight 100 and green at 0.
func StartHAProxy(t testing.TB, blue, green int) *HAProxy {
	t.Helper()
	bin := Binary(t, "haproxy")
	dir := t.TempDir()
	h := &HAProxy{Port: FreePort(t), Socket: filepath.Join(dir, "admin.sock")}
	cfg := filepath.Join(dir, "haproxy.cfg")
	writeFile(t, cfg, fmt.Sprintf(`global
	stats socket %s mode 600 level admin
	maxconn 512

defaults
	mode http
	timeout connect 2s
	timeout client 30s
	timeout server 30s

frontend fe
	bind 127.0.0.1:%d
	default_backend app

backend app
	balance roundrobin
	server blue 127.0.0.1:%d weight 100
	server green 127.0.0.1:%d weight 0
`, h.Socket, h.Port, blue, green))
	h.Process = start(t, dir, bin, "-db", "-f", cfg)
	waitFor(t, "haproxy", h.Process, func() bool {
		_, err := os.Stat(h.Socket)
		return err == nil && dialable(Addr(h.Port))()
	})
	return h
}

// Prometheus is a real Prometheus scraping targets every second.
type Prometheus struct {
	*Process
	URL string
}

// StartPrometheus starts Prometheus scraping the targets (host:port, /metrics) every second
// and waits until it has scraped every one of them once.
func StartPrometheus(t testing.TB, targets ...string) *Prometheus {
	t.Helper()
	bin := Binary(t, "prometheus")
	dir := t.TempDir()
	port := FreePort(t)
	cfg := filepath.Join(dir, "prometheus.yml")
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = strconv.Quote(tg)
	}
	writeFile(t, cfg, fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: router
    static_configs:
      - targets: [%s]
`, strings.Join(quoted, ", ")))
	p := &Prometheus{URL: "http://" + Addr(port)}
	p.Process = start(t, dir, bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+Addr(port),
		"--log.level=warn",
	)
	waitFor(t, "prometheus scraping", p.Process, func() bool {
		v, ok := p.instant(`count(up == 1)`)
		return ok && v == float64(len(targets))
	})
	return p
}

// instant runs a query and returns its single value.
func (p *Prometheus) instant(q string) (float64, bool) {
	result, err := p.query(q)
	if err != nil || len(result) != 1 {
		return 0, false
	}
	var sample struct {
		Value [2]any `json:"value"`
	}
	if json.Unmarshal(result[0], &sample) != nil {
		return 0, false
	}
	s, _ := sample.Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

// Query runs an instant query and returns how many series it gave; an invalid query, or
// one Prometheus fails to run, is an error naming why.
func (p *Prometheus) Query(q string) (int, error) {
	result, err := p.query(q)
	return len(result), err
}

// query runs an instant query and returns its result's series.
func (p *Prometheus) query(q string) ([]json.RawMessage, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(p.URL + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("query %s: %s: %w", q, resp.Status, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, r.Error)
	}
	return r.Data.Result, nil
}

// WaitSamples waits until Prometheus holds at least n samples of the series q selects, so a
// test's queries over a window see data.
func (p *Prometheus) WaitSamples(t testing.TB, q string, n int) {
	t.Helper()
	waitFor(t, "prometheus samples of "+q, p.Process, func() bool {
		v, ok := p.instant(fmt.Sprintf(`count_over_time(%s[1m])`, q))
		return ok && v >= float64(n)
	})
}
