package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// WeightBody is the admin API's weight document, read by GET /weight and sent to PUT /weight.
type WeightBody struct {
	Weight int `json:"canary_weight"`
}

// AdminHandler serves the admin API:
//
//	GET  /weight              {"canary_weight": W}
//	PUT  /weight              {"canary_weight": W} sets it (POST too); 400 outside 0-100
//	GET  /stats?stable=C&canary=C   Stats; latency samples after cursor C of each role named
//	GET  /metrics             Prometheus metrics
//	GET  /healthz             200
func (p *Proxy) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /weight", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, WeightBody{Weight: p.Weight()})
	})
	setWeight := func(w http.ResponseWriter, r *http.Request) {
		var body WeightBody
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("weight body: %w (want {\"canary_weight\": 0-100})", err))
			return
		}
		if err := p.SetWeight(body.Weight); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, WeightBody{Weight: p.Weight()})
	}
	mux.HandleFunc("PUT /weight", setWeight)
	mux.HandleFunc("POST /weight", setWeight)
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		since := map[string]uint64{}
		for _, role := range []string{RoleStable, RoleCanary} {
			v := r.URL.Query().Get(role)
			if v == "" {
				continue
			}
			c, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Errorf("cursor %s=%q: %w", role, v, err))
				return
			}
			since[role] = c
		}
		writeJSON(w, http.StatusOK, p.Stats(since))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	// The client may have gone; nothing useful to do with the error.
	_ = json.NewEncoder(w).Encode(v)
}

// ErrorBody is the admin API's error document.
type ErrorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, ErrorBody{Error: err.Error()})
}
