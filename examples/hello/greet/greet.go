// Package greet builds greetings and serves them over HTTP.
package greet

import (
	"fmt"
	"net/http"
	"strings"
)

// MaxNameLen bounds a name so a greeting stays one short line.
const MaxNameLen = 64

// Greeting returns the greeting for name; an empty or blank name greets the world.
func Greeting(name string) string {
	name = strings.TrimSpace(name)
	if name == "" {
		name = "world"
	}
	if r := []rune(name); len(r) > MaxNameLen {
		name = string(r[:MaxNameLen])
	}
	return fmt.Sprintf("hello, %s", name)
}

// Handler serves GET /?name=NAME with a greeting and GET /healthz with "ok".
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, Greeting(r.URL.Query().Get("name")))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	return mux
}
