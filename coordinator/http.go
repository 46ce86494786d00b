package coordinator

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/internal/auth"
	"github.com/sluice-ci/sluice/internal/bus"
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

// Handler returns the HTTP API and dashboard.
//
// On a fleet with authentication (Config.Auth) every call names its principal with a token
// from `sluice auth init` or `sluice auth add-user`, checked against the trust file: the
// header `Authorization: Bearer <token>`, or for reads in a browser the cookie the /login
// form sets. A role's token may call that role's verbs, as on NATS. Mutations take the
// header only, so a page on another site cannot make a signed-in browser act. Without
// authentication the HTTP API is read-only.
func (c *Coordinator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	// Unauthenticated, as Prometheus scrapes: counts, queue depths and the pipeline, run and
	// stage names of rollouts in progress; nothing a step wrote.
	mux.Handle("GET /metrics", promhttp.HandlerFor(c.metrics.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(c.log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("GET /login", c.loginPage)
	mux.HandleFunc("POST /login", c.login)
	mux.HandleFunc("GET /api/v1/runs", c.reader(auth.VerbList, func(w http.ResponseWriter, r *http.Request) {
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		runs := c.ListRuns(&sluicev1.ListRunsRequest{Pipeline: r.URL.Query().Get("pipeline"), Limit: int32(limit)})
		writeProto(w, &sluicev1.ListRunsResponse{Runs: runs}, nil)
	}))
	mux.HandleFunc("GET /api/v1/runs/{id}", c.reader(auth.VerbGet, func(w http.ResponseWriter, r *http.Request) {
		st, err := c.GetRun(r.Context(), r.PathValue("id"))
		writeProto(w, &sluicev1.GetRunResponse{Run: st}, err)
	}))
	mux.HandleFunc("GET /api/v1/runs/{id}/artifacts/{stage}/{name...}", c.reader(auth.VerbGet, c.serveArtifact))
	mux.HandleFunc("POST /api/v1/runs", c.writer(auth.VerbSubmit, func(w http.ResponseWriter, r *http.Request, who Caller) {
		var req sluicev1.SubmitRunRequest
		if err := readProtoJSON(w, r, &req); err != nil {
			writeProto(w, nil, err)
			return
		}
		st, err := c.SubmitRun(r.Context(), who, &req, r.Header.Get("traceparent"))
		writeProto(w, &sluicev1.SubmitRunResponse{Run: st}, err)
	}))
	mux.HandleFunc("POST /api/v1/runs/{id}/cancel", c.writer(auth.VerbCancel, func(w http.ResponseWriter, r *http.Request, who Caller) {
		var req sluicev1.CancelRunRequest
		if err := readProtoJSON(w, r, &req); err != nil {
			writeProto(w, nil, err)
			return
		}
		st, err := c.CancelRun(r.Context(), who, r.PathValue("id"), req.GetReason())
		writeProto(w, &sluicev1.CancelRunResponse{Run: st}, err)
	}))
	mux.HandleFunc("POST /api/v1/runs/{id}/stages/{stage}/approve", c.writer(auth.VerbApprove, func(w http.ResponseWriter, r *http.Request, who Caller) {
		var req sluicev1.ApproveStageRequest
		if err := readProtoJSON(w, r, &req); err != nil {
			writeProto(w, nil, err)
			return
		}
		st, err := c.ApproveStage(r.Context(), who, r.PathValue("id"), r.PathValue("stage"))
		writeProto(w, &sluicev1.ApproveStageResponse{Run: st}, err)
	}))
	mux.HandleFunc("POST /api/v1/runs/{id}/rollback", c.writer(auth.VerbRollback, func(w http.ResponseWriter, r *http.Request, who Caller) {
		var req sluicev1.RollbackRunRequest
		if err := readProtoJSON(w, r, &req); err != nil {
			writeProto(w, nil, err)
			return
		}
		st, err := c.RollbackRun(r.Context(), who, r.PathValue("id"), req.GetReason())
		writeProto(w, &sluicev1.RollbackRunResponse{Run: st}, err)
	}))
	mux.HandleFunc("POST /api/v1/runs/{id}/rollout/{action}", c.writer(auth.VerbRollout, func(w http.ResponseWriter, r *http.Request, who Caller) {
		var req sluicev1.RolloutRequest
		if err := readProtoJSON(w, r, &req); err != nil {
			writeProto(w, nil, err)
			return
		}
		req.Id, req.Action = r.PathValue("id"), r.PathValue("action")
		st, err := c.Rollout(r.Context(), who, &req)
		writeProto(w, &sluicev1.RolloutResponse{Run: st}, err)
	}))
	mux.HandleFunc("POST /api/v1/runs/{id}/stages/{stage}/retry", c.writer(auth.VerbRetry, func(w http.ResponseWriter, r *http.Request, who Caller) {
		st, err := c.RetryStage(r.Context(), who, r.PathValue("id"), r.PathValue("stage"))
		writeProto(w, &sluicev1.RetryStageResponse{Run: st}, err)
	}))
	mux.HandleFunc("GET /api/v1/watch", c.reader(auth.VerbList, c.watchRuns))
	mux.HandleFunc("GET /api/v1/runs/{id}/watch", c.reader(auth.VerbGet, c.watchRun))
	mux.HandleFunc("GET /api/v1/runs/{id}/logs/{stage}", c.reader(auth.VerbGet, c.serveLogs))
	mux.HandleFunc("GET /dashboard.js", serveDashboardJS)
	mux.HandleFunc("GET /{$}", c.reader(auth.VerbList, func(w http.ResponseWriter, r *http.Request) {
		c.renderDashboard(w, r, "")
	}))
	mux.HandleFunc("GET /runs/{id}", c.reader(auth.VerbGet, func(w http.ResponseWriter, r *http.Request) {
		c.renderDashboard(w, r, r.PathValue("id"))
	}))
	return mux
}

// serveArtifact streams one artifact of a stage from the artifacts object store. Only
// artifacts the run's own results recorded are served, each as a download (never rendered
// in the dashboard's origin), and only while the stored object still has the digest the
// result recorded.
func (c *Coordinator) serveArtifact(w http.ResponseWriter, r *http.Request) {
	st, err := c.GetRun(r.Context(), r.PathValue("id"))
	if err != nil {
		writeProto(w, nil, err)
		return
	}
	var ref *sluicev1.ArtifactRef
	prefix := st.GetId() + "/" + r.PathValue("stage") + "/"
	for _, s := range st.GetStages() {
		if s.GetName() != r.PathValue("stage") {
			continue
		}
		for _, a := range s.GetArtifacts() {
			if a.GetName() == r.PathValue("name") && strings.HasPrefix(a.GetObject(), prefix) {
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
	info, err := obj.Info()
	if err != nil || ref.GetDigest() == "" || bus.ObjectDigest(info.Digest) != ref.GetDigest() {
		writeProto(w, nil, fmt.Errorf("%w: artifact %s no longer has the digest its stage recorded (%s): it was replaced after the stage ended", ErrConflict, ref.GetObject(), ref.GetDigest()))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if ref.GetContentType() != "" {
		w.Header().Set("X-Sluice-Content-Type", ref.GetContentType())
	}
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(ref.GetName())}))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'")
	_, _ = io.Copy(w, obj)
}

func (c *Coordinator) serveHTTP(ctx context.Context) error {
	ln, err := net.Listen("tcp", c.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP API: listen on %s: %w", c.cfg.HTTPAddr, err)
	}
	// Requests end with the coordinator: the dashboard's event streams would hold Shutdown.
	srv := &http.Server{Handler: c.Handler(), ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
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

// tokenCookie holds a token for the dashboard's reads in a browser.
const tokenCookie = "sluice_token"

// principal reads the caller of an HTTP request from its token: the Authorization header,
// or (when cookies are allowed) the cookie /login sets.
func (c *Coordinator) principal(r *http.Request, cookies bool) (Caller, error) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok && cookies {
		if ck, err := r.Cookie(tokenCookie); err == nil {
			token, ok = ck.Value, true
		}
	}
	if !ok {
		return Caller{}, fmt.Errorf("%w: send `Authorization: Bearer <token>` with a token from `sluice auth init` (tokens/<role>.token)", errUnauthenticated)
	}
	role, name, err := c.cfg.Auth.Trust.VerifyToken(token)
	if err != nil {
		return Caller{}, fmt.Errorf("%w: %v", errUnauthenticated, err)
	}
	return Caller{Role: role, Name: name}, nil
}

var errUnauthenticated = errors.New("unauthenticated")

// reader serves a read: open without authentication (the listener is loopback by default),
// else for a principal whose role may call verb.
func (c *Coordinator) reader(verb auth.Verb, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if c.cfg.Auth == nil {
			next(w, r)
			return
		}
		who, err := c.principal(r, true)
		if err == nil {
			err = who.may(verb)
		}
		if err != nil {
			if strings.HasPrefix(r.URL.Path, "/api/") {
				writeHTTPError(w, err)
				return
			}
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		next(w, r)
	}
}

// writer serves a mutation for a principal (from the Authorization header only) whose role
// may call verb; without authentication mutations are refused.
func (c *Coordinator) writer(verb auth.Verb, next func(http.ResponseWriter, *http.Request, Caller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if c.cfg.Auth == nil {
			writeHTTPError(w, fmt.Errorf("%w: this coordinator runs without authentication, so its HTTP API is read-only: start the fleet with --auth DIR (from `sluice auth init`) and send a role's token", ErrForbidden))
			return
		}
		who, err := c.principal(r, false)
		if err == nil {
			err = who.may(verb)
		}
		if err != nil {
			writeHTTPError(w, err)
			return
		}
		next(w, r, who)
	}
}

func writeHTTPError(w http.ResponseWriter, err error) {
	if errors.Is(err, errUnauthenticated) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
	}
	writeProto(w, nil, err)
}

func (c *Coordinator) loginPage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	_, _ = io.WriteString(w, loginHTML)
}

const loginHTML = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sluice · sign in</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:2rem}input{width:40rem}</style></head>
<body><h1>Sluice</h1><p>Paste a token from <code>sluice auth init</code> (tokens/observer.token reads; tokens of other roles act).</p>
<form method="post" action="/login"><input name="token" type="password" autocomplete="off"> <button>Sign in</button></form></body></html>`

// login checks a token from the form and keeps it in an HttpOnly, same-site cookie.
func (c *Coordinator) login(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Auth == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	token := strings.TrimSpace(r.FormValue("token"))
	if _, _, err := c.cfg.Auth.Trust.VerifyToken(token); err != nil {
		writeHTTPError(w, fmt.Errorf("%w: %v", errUnauthenticated, err))
		return
	}
	http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// maxRequestBytes bounds an HTTP request body; a larger one is refused with 413.
const maxRequestBytes = 4 << 20

func readProtoJSON(w http.ResponseWriter, r *http.Request, m proto.Message) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return fmt.Errorf("%w: the body is larger than %d bytes", errTooLarge, tooLarge.Limit)
	}
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

var errTooLarge = errors.New("request too large")

func writeProto(w http.ResponseWriter, m proto.Message, err error) {
	if err != nil {
		code := errorCode(err)
		switch {
		case errors.Is(err, errUnauthenticated):
			code = http.StatusUnauthorized
		case errors.Is(err, errTooLarge):
			code = http.StatusRequestEntityTooLarge
		}
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
	// Auth: the fleet checks tokens, so the run page offers its buttons.
	Auth bool
}

func (c *Coordinator) renderDashboard(w http.ResponseWriter, r *http.Request, id string) {
	data := dashboardData{Auth: c.cfg.Auth != nil}
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
	// Only the dashboard's own script runs, and it talks only to this origin.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'")
	if err := dashboard.Execute(w, data); err != nil {
		c.log.Warn("render dashboard", "err", err)
	}
}
