package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

const benchJourney = `name: bench
steps:
  - goto: /items
  - fill: {selector: "#new", value: milk}
  - click: "#add"
  - expect_text: {selector: "#items", text: "milk (r)"}
`

// BenchmarkEngineJourney is one four-step journey through the engine: a fresh incognito
// context, event recording, polling expectations. Compare with BenchmarkBareChromedp.
func BenchmarkEngineJourney(b *testing.B) {
	if engineErr != nil {
		b.Skip(engineErr)
	}
	s := newSite(b)
	j, err := Parse("bench.yaml", []byte(benchJourney), nil)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if r := engine.Run(b.Context(), j, RunOptions{BaseURL: s.URL}); r.Status != StatusPassed {
			b.Fatal(r.Message)
		}
	}
}

// BenchmarkBareChromedp does the same steps with chromedp alone, in a fresh incognito
// context of the same browser.
func BenchmarkBareChromedp(b *testing.B) {
	if engineErr != nil {
		b.Skip(engineErr)
	}
	s := newSite(b)
	bctx, err := engine.browser(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		func() {
			tab, cancel := chromedp.NewContext(bctx.ctx, chromedp.WithNewBrowserContext())
			defer cancel()
			ctx, tcancel := context.WithTimeout(tab, DefaultStepTimeout)
			defer tcancel()
			err := chromedp.Do(ctx,
				chromedp.Navigate(s.URL+"/items"),
				chromedp.SendKeys(chromedp.CSS("#new"), "milk"),
				chromedp.Click(chromedp.CSS("#add")),
			)
			if err != nil {
				b.Fatal(err)
			}
			text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#items")))
			if err != nil || !strings.Contains(text, "milk (r)") {
				b.Fatalf("text %q, %v", text, err)
			}
		}()
	}
}
