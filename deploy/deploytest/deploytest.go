// Package deploytest registers deploy modules for the length of one test, so that a test's
// fake router, provider or judge is usable by deploy.New and by pipeline validation without
// appearing in the next test's lists of registered names. Tests using it must not run in
// parallel with tests that read those lists.
package deploytest

import (
	"testing"

	"github.com/sluice-ci/sluice/deploy"
	"github.com/sluice-ci/sluice/deploy/internal/unregister"
)

// Router registers m until t and its subtests end.
func Router(t testing.TB, m deploy.RouterModule) {
	t.Helper()
	deploy.RegisterRouter(m)
	t.Cleanup(func() { unregister.Router(m.Name) })
}

// Provider registers m until t and its subtests end.
func Provider(t testing.TB, m deploy.ProviderModule) {
	t.Helper()
	deploy.RegisterProvider(m)
	t.Cleanup(func() { unregister.Provider(m.Name) })
}

// Judge registers m until t and its subtests end.
func Judge(t testing.TB, m deploy.JudgeModule) {
	t.Helper()
	deploy.RegisterJudge(m)
	t.Cleanup(func() { unregister.Judge(m.Name) })
}
