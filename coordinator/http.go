package coordinator

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

//go:embed dashboard.html
var dashboardHTML string

var dashboard = template.Must(template.New("dashboard").Funcs(template.FuncMap{
	"since": func(t interface{ AsTime() time.Time }) string {
		return time.Since(t.AsTime()).Round(time.Second).String()
	},
	"short": func(s interface{ Short() string }) string { return s.Short() },
}).Parse(dashboardHTML))

// Handler returns the HTTP API and dashboard. Mutating calls need `Authorization: Bearer
// <token>`; a coordinator without a token refuses them.
func (c *Coordinator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /api/v1/runs", func(w http.ResponseWriter, r *http.Request) {
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		runs := c.ListRuns(&sluicev1.ListRunsRequest{Pipeline: r.URL.Query().Get("pipeline"), Limit: int32(limit)})
		writeProto(w, &sluicev1.ListRunsResponse{Runs: runs}, nil)
	})
	mux.HandleFunc("GET /api/v1/runs/{id}", func(w http.ResponseWriter, r *http.Request) {
		st, err := c.GetRun(r.Context(), r.PathValue("id"))
		writeProto(w, &sluicev1.GetRunResponse{Run: st}, err)
	})
	mux.HandleFunc("GET /api/v1/runs/{id}/artifacts/{stage}/{name...}", c.serveArtifact)
	mux.HandleFunc("POST /api/v1/runs", c.authorized(func(w http.ResponseWriter, r *http.Request) {
		var req sluicev1.SubmitRunRequest
		if err := readProtoJSON(r, &req); err != nil {
			writeProto(w, nil, err)
			return
		}
		st, err := c.SubmitRun(r.Context(), &req, r.Header.Get("traceparent"))
		writeProto(w, &sluicev1.SubmitRunResponse{Run: st}, err)
	}))
	mux.HandleFunc("POST /api/v1/runs/{id}/cancel", c.authorized(func(w http.ResponseWriter, r *http.Request) {
		var req sluicev1.CancelRunRequest
		if err := readProtoJSON(r, &req); err != nil {
			writeProto(w, nil, err)
			return
		}
		st, err := c.CancelRun(r.Context(), r.PathValue("id"), req.GetReason())
		writeProto(w, &sluicev1.CancelRunResponse{Run: st}, err)
	}))
	mux.HandleFunc("POST /api/v1/runs/{id}/stages/{stage}/approve", c.authorized(func(w http.ResponseWriter, r *http.Request) {
		var req sluicev1.ApproveStageRequest
		if err := readProtoJSON(r, &req); err != nil {
			writeProto(w, nil, err)
			return
		}
		st, err := c.ApproveStage(r.Context(), r.PathValue("id"), r.PathValue("stage"), req.GetApprover())
		writeProto(w, &sluicev1.ApproveStageResponse{Run: st}, err)
	}))
	mux.HandleFunc("POST /api/v1/runs/{id}/rollback", c.authorized(func(w http.ResponseWriter, r *http.Request) {
		var req sluicev1.RollbackRunRequest
		if err := readProtoJSON(r, &req); err != nil {
			writeProto(w, nil, err)
			return
		}
		st, err := c.RollbackRun(r.Context(), r.PathValue("id"), req.GetReason(), req.GetBy())
		writeProto(w, &sluicev1.RollbackRunResponse{Run: st}, err)
	}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		c.renderDashboard(w, r, "")
	})
	mux.HandleFunc("GET /runs/{id}", func(w http.ResponseWriter, r *http.Request) {
		c.renderDashboard(w, r, r.PathValue("id"))
	})
	return mux
}

// serveArtifact streams one artifact of a stage from the artifacts object store.
func (c *Coordinator) serveArtifact(w http.ResponseWriter, r *http.Request) {
	st, err := c.GetRun(r.Context(), r.PathValue("id"))
	if err != nil {
		writeProto(w, nil, err)
		return
	}
	var ref *sluicev1.ArtifactRef
	for _, s := range st.GetStages() {
		if s.GetName() != r.PathValue("stage") {
			continue
		}
		for _, a := range s.GetArtifacts() {
			if a.GetName() == r.PathValue("name") {
				ref = a
			}
		}
	}
	if ref == nil {
		writeProto(w, nil, fmt.Errorf("%w: run %s has no artifact %q in stage %q", ErrNotFound, st.GetId(), r.PathValue("name"), r.PathValue("stage")))
		return
	}
	store, err := c.js.ObjectStore(r.Context(), c.cfg.Names.ArtifactsStore())
	if err != nil {
		writeProto(w, nil, fmt.Errorf("open %s: %w", c.cfg.Names.ArtifactsStore(), err))
		return
	}
	obj, err := store.Get(r.Context(), ref.GetObject())
	if err != nil {
		writeProto(w, nil, fmt.Errorf("%w: artifact %s: %v", ErrNotFound, ref.GetObject(), err))
		return
	}
	defer obj.Close()
	if ref.GetContentType() != "" {
		w.Header().Set("Content-Type", ref.GetContentType())
	}
	_, _ = io.Copy(w, obj)
}

func (c *Coordinator) serveHTTP(ctx context.Context) error {
	ln, err := net.Listen("tcp", c.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP API: listen on %s: %w", c.cfg.HTTPAddr, err)
	}
	srv := &http.Server{Handler: c.Handler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	c.log.Info("HTTP API and dashboard", "url", "http://"+ln.Addr().String())
	select {
	case err := <-done:
		return fmt.Errorf("HTTP API: %w", err)
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
		<-done
		return nil
	}
}

func (c *Coordinator) authorized(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if c.cfg.APIToken == "" {
			http.Error(w, "mutating calls are disabled: this coordinator has no API token (start it with --api-token or $SLUICE_API_TOKEN)", http.StatusForbidden)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(c.cfg.APIToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
			http.Error(w, "missing or wrong token: send `Authorization: Bearer <token>`", http.StatusUnauthorized)
			return
		}
		next(w, r)
	}
}

const maxRequestBytes = 4 << 20

func readProtoJSON(r *http.Request, m proto.Message) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes))
	if err != nil {
		return fmt.Errorf("%w: read body: %v", ErrBadRequest, err)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil
	}
	if err := protojson.Unmarshal(data, m); err != nil {
		return fmt.Errorf("%w: body is not a valid %s: %v", ErrBadRequest, m.ProtoReflect().Descriptor().Name(), err)
	}
	return nil
}

func writeProto(w http.ResponseWriter, m proto.Message, err error) {
	if err != nil {
		code := errorCode(err)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = fmt.Fprintf(w, "{\"error\":%q,\"code\":%d}\n", err.Error(), code)
		return
	}
	data, mErr := protojson.MarshalOptions{Multiline: true}.Marshal(m)
	if mErr != nil {
		http.Error(w, mErr.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(data)
}

type dashboardData struct {
	Runs []*sluicev1.RunSummary
	Run  *sluicev1.RunState
	Err  string
}

func (c *Coordinator) renderDashboard(w http.ResponseWriter, r *http.Request, id string) {
	data := dashboardData{}
	if id == "" {
		data.Runs = c.ListRuns(&sluicev1.ListRunsRequest{Limit: 100})
	} else {
		st, err := c.GetRun(r.Context(), id)
		if err != nil {
			data.Err = err.Error()
			if errors.Is(err, ErrNotFound) {
				w.WriteHeader(http.StatusNotFound)
			}
		}
		data.Run = st
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := dashboard.Execute(w, data); err != nil {
		c.log.Warn("render dashboard", "err", err)
	}
}
