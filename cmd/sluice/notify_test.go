package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ci/sluice/internal/bus"
)

// webhook is a Slack-compatible incoming webhook that answers the first failures posts with
// a 503, then takes them.
type webhook struct {
	mu       sync.Mutex
	failures int
	posts    int
	texts    []string
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Text string `json:"text"`
	}
	data, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.posts++
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(data, &body) != nil || body.Text == "" {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	if h.failures > 0 {
		h.failures--
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	h.texts = append(h.texts, body.Text)
	_, _ = io.WriteString(w, "ok")
}

func (h *webhook) got() (posts int, texts []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.posts, slices.Clone(h.texts)
}

// sluice notify posts a failed run's failures to the webhook, once each, through the
// webhook's outage, and nothing of a run that passed.
func TestNotifyPostsFailuresThroughAnOutage(t *testing.T) {
	url := startTestFleet(t, "all")
	hook := &webhook{failures: 2}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() {
		code, _, stderr := cliCtx(ctx, "--nats", url, "notify", "--webhook", srv.URL+"/services/T0/B0/secret", "--retries", "3", "--link", "http://dash.example")
		if strings.Contains(stderr, "secret") {
			t.Errorf("notify printed the webhook's secret path:\n%s", stderr)
		}
		done <- code
	}()
	nc, err := bus.Connect(t.Context(), bus.ConnectOptions{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	waitUntil(t, "the notifier's consumer", func() bool {
		_, err := js.Consumer(t.Context(), bus.NewNames("").EventsStream(), "notify-default")
		return err == nil
	})

	if code, stdout, stderr := cli(t, "--nats", url, "run", "testdata/pass.yaml", "--source", "testdata/tree", "--ref", "main"); code != exitOK {
		t.Fatalf("passing run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, _ := cli(t, "--nats", url, "run", "testdata/fail.yaml", "--no-source", "--ref", "main")
	if code != exitFailed {
		t.Fatalf("failing run: exit %d", code)
	}
	id := runID(t, stdout)
	var texts []string
	waitUntil(t, "two messages", func() bool {
		_, texts = hook.got()
		return len(texts) >= 2
	})
	time.Sleep(500 * time.Millisecond)
	posts, texts := hook.got()
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("notify exited %d after Ctrl-C, want 0", code)
	}
	if len(texts) != 2 || posts != 4 {
		t.Fatalf("the webhook took %d messages in %d posts, want the stage's and the run's failure in 4 (2 refused): %q", len(texts), posts, texts)
	}
	link := "<http://dash.example/runs/" + id + "|" + id + ">"
	if !strings.Contains(texts[0], "stage.failed") || !strings.Contains(texts[0], "*broken*") || !strings.Contains(texts[0], link) ||
		!strings.Contains(texts[1], "run.failed") || !strings.Contains(texts[1], link) {
		t.Errorf("messages %q: want the stage broken's failure, then the run's, linking to %s", texts, link)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
