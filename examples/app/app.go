// Package app is the example service the staging gates run against: a small payments API
// (the shape the seeds' contract tests pin) plus a few HTML pages for browser journeys. It
// keeps its payments in memory and is safe for concurrent use.
package app

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Payment statuses. A payment's status follows from its request, so contract tests and
// journeys can ask for each one: a description containing "decline" fails, an amount of
// ReviewAmount or more waits for review, anything else succeeds.
const (
	StatusPending   = "pending"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"

	ReviewAmount = 100000
)

// VersionHeader carries the serving version on every response, so a router's traffic split
// can be observed from the client side.
const VersionHeader = "X-App-Version"

// Payment is the API's resource.
type Payment struct {
	ID          string    `json:"id"`
	Status      string    `json:"status"`
	Amount      int64     `json:"amount"`
	Currency    string    `json:"currency"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
}

// Options configures the service. The fault knobs let load tests and rollout tests run
// against a degraded version of the same service.
type Options struct {
	Version string
	// Latency is added to every API request.
	Latency time.Duration
	// ErrorRate is the fraction of API requests answered 500, spread evenly (every
	// 1/ErrorRate-th request), so a test sees the same rate on every run.
	ErrorRate float64
}

// NewHandler returns the service at the given version, without faults.
func NewHandler(version string) http.Handler { return New(Options{Version: version}) }

// New returns the service configured by o.
func New(o Options) http.Handler {
	s := &server{opts: o, byID: make(map[string]*Payment)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.health)
	mux.Handle("POST /api/payments", s.api(s.createAPI))
	mux.Handle("GET /api/payments", s.api(s.listAPI))
	mux.Handle("GET /api/payments/{id}", s.api(s.getAPI))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/payments", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("GET /payments", s.listPage)
	mux.HandleFunc("GET /payments/new", s.newPage)
	mux.HandleFunc("POST /payments/new", s.createPage)
	mux.HandleFunc("GET /payments/{id}", s.showPage)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(VersionHeader, o.Version)
		mux.ServeHTTP(w, r)
	})
}

type server struct {
	opts     Options
	requests atomic.Uint64

	mu       sync.RWMutex
	byID     map[string]*Payment
	payments []*Payment // in creation order
}

// api wraps an API endpoint with the configured faults.
func (s *server) api(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Latency > 0 {
			select {
			case <-time.After(s.opts.Latency):
			case <-r.Context().Done():
				return
			}
		}
		if s.injectError() {
			writeJSON(w, http.StatusInternalServerError, apiError{Error: "injected failure"})
			return
		}
		h(w, r)
	})
}

// injectError reports whether this request is one of the ErrorRate share that fails: the
// n-th request fails when floor(n*rate) steps up, which spreads failures evenly.
func (s *server) injectError() bool {
	rate := s.opts.ErrorRate
	if rate <= 0 {
		return false
	}
	n := float64(s.requests.Add(1))
	return rate >= 1 || int64(n*rate) > int64((n-1)*rate)
}

type apiError struct {
	Error string `json:"error"`
}

type createRequest struct {
	Amount      *int64 `json:"amount"`
	Currency    string `json:"currency"`
	Description string `json:"description"`
}

var currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)

// errInvalid marks a payment request the client must fix.
var errInvalid = errors.New("invalid payment")

func (s *server) create(amount int64, currency, description string) (*Payment, error) {
	switch {
	case amount <= 0:
		return nil, fmt.Errorf("%w: amount must be a positive integer (minor units), got %d", errInvalid, amount)
	case !currencyPattern.MatchString(currency):
		return nil, fmt.Errorf("%w: currency must be an ISO 4217 code such as USD, got %q", errInvalid, currency)
	case len(description) > 500:
		return nil, fmt.Errorf("%w: description is longer than 500 characters", errInvalid)
	}
	p := &Payment{
		ID: newID(), Status: StatusSucceeded, Amount: amount, Currency: currency,
		Description: description, CreatedAt: time.Now().UTC().Truncate(time.Second),
	}
	switch {
	case strings.Contains(strings.ToLower(description), "decline"):
		p.Status = StatusFailed
	case amount >= ReviewAmount:
		p.Status = StatusPending
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byID[p.ID] = p
	s.payments = append(s.payments, p)
	return p, nil
}

func (s *server) get(id string) (Payment, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.byID[id]
	if !ok {
		return Payment{}, false
	}
	return *p, true
}

// list returns copies of the payments, newest first.
func (s *server) list() []Payment {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Payment, 0, len(s.payments))
	for _, p := range slices.Backward(s.payments) {
		out = append(out, *p)
	}
	return out
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return "pay_" + hex.EncodeToString(b[:])
}

func (s *server) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": s.opts.Version})
}

func (s *server) createAPI(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "request body: " + err.Error()})
		return
	}
	if req.Amount == nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "amount is required"})
		return
	}
	p, err := s.create(*req.Amount, req.Currency, req.Description)
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, apiError{Error: err.Error()})
		return
	}
	w.Header().Set("Location", "/api/payments/"+p.ID)
	writeJSON(w, http.StatusCreated, p)
}

func (s *server) getAPI(w http.ResponseWriter, r *http.Request) {
	p, ok := s.get(r.PathValue("id"))
	if !ok {
		writeJSON(w, http.StatusNotFound, apiError{Error: "no payment " + r.PathValue("id")})
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *server) listAPI(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"payments": s.list()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The status line is out; an encoding error can only be a broken connection.
	_ = json.NewEncoder(w).Encode(v)
}

// sessionCookie holds the signed-in user's name. The example has no real authentication:
// any non-empty user and password sign in.
const sessionCookie = "session"

func (s *server) loginPage(w http.ResponseWriter, _ *http.Request) {
	render(w, http.StatusOK, "login", page{Title: "Sign in", Version: s.opts.Version})
}

func (s *server) login(w http.ResponseWriter, r *http.Request) {
	user, password := r.PostFormValue("user"), r.PostFormValue("password")
	if user == "" || password == "" {
		render(w, http.StatusUnauthorized, "login", page{Title: "Sign in", Version: s.opts.Version, Error: "Enter a user name and a password."})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: user, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/payments", http.StatusSeeOther)
}

func (s *server) listPage(w http.ResponseWriter, r *http.Request) {
	render(w, http.StatusOK, "list", page{Title: "Payments", Version: s.opts.Version, User: user(r), Payments: s.list()})
}

func (s *server) newPage(w http.ResponseWriter, r *http.Request) {
	render(w, http.StatusOK, "new", page{Title: "New payment", Version: s.opts.Version, User: user(r)})
}

func (s *server) createPage(w http.ResponseWriter, r *http.Request) {
	amount, err := strconv.ParseInt(strings.TrimSpace(r.PostFormValue("amount")), 10, 64)
	if err != nil {
		render(w, http.StatusUnprocessableEntity, "new", page{Title: "New payment", Version: s.opts.Version, User: user(r), Error: "Amount must be a whole number of minor units, e.g. 1250."})
		return
	}
	p, err := s.create(amount, strings.ToUpper(strings.TrimSpace(r.PostFormValue("currency"))), r.PostFormValue("description"))
	if err != nil {
		render(w, http.StatusUnprocessableEntity, "new", page{Title: "New payment", Version: s.opts.Version, User: user(r), Error: err.Error()})
		return
	}
	http.Redirect(w, r, "/payments/"+p.ID, http.StatusSeeOther)
}

func (s *server) showPage(w http.ResponseWriter, r *http.Request) {
	p, ok := s.get(r.PathValue("id"))
	if !ok {
		render(w, http.StatusNotFound, "missing", page{Title: "Payment not found", Version: s.opts.Version, User: user(r)})
		return
	}
	render(w, http.StatusOK, "show", page{Title: "Payment " + p.ID, Version: s.opts.Version, User: user(r), Payment: &p})
}

func user(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

type page struct {
	Title, Version, User, Error string
	Payments                    []Payment
	Payment                     *Payment
}

func render(w http.ResponseWriter, status int, name string, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	// The templates are fixed and tested; an error here is a broken connection.
	_ = pages.ExecuteTemplate(w, name, p)
}
