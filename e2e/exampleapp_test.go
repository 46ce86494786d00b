package e2e

import (
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/sluice-ci/sluice/examples/app"
)

// TestExampleAppJourneys runs the example app's journeys (examples/app/journeys) against the
// app itself, served on loopback.
func TestExampleAppJourneys(t *testing.T) {
	e := needBrowser(t)
	srv := httptest.NewServer(app.NewHandler("e2e-test"))
	t.Cleanup(srv.Close)
	files, err := filepath.Glob("../examples/app/journeys/*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("journeys %v, %v; want the example app's four", files, err)
	}
	journeys, err := LoadFiles(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range journeys {
		r := e.Run(t.Context(), j, RunOptions{BaseURL: srv.URL})
		if r.Status != StatusPassed {
			t.Errorf("%s: %s; console %v", j.File, r.Message, r.Console)
		}
		if j.Name == "create a payment" && findShot(r, "created-payment.png") == nil {
			t.Errorf("%s: no screenshot created-payment.png among %v", j.File, shotNames(r))
		}
	}
}
