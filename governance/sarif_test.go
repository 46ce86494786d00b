package governance

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSARIFStructure validates the log against the parts of the SARIF 2.1.0 schema that
// viewers depend on: the required properties at each level, the rule index of each result
// pointing at its rule, and locations that are relative with a valid region.
func TestSARIFStructure(t *testing.T) {
	rep := scanFixture(t, fixtureTree(t), nil)
	var b bytes.Buffer
	if err := WriteSARIF(&b, rep, SARIFOptions{}); err != nil {
		t.Fatal(err)
	}
	var log struct {
		Schema  *string `json:"$schema"`
		Version *string `json:"version"`
		Runs    []struct {
			Tool *struct {
				Driver *struct {
					Name  string `json:"name"`
					Rules []struct {
						ID                   string                  `json:"id"`
						ShortDescription     *struct{ Text string }  `json:"shortDescription"`
						DefaultConfiguration *struct{ Level string } `json:"defaultConfiguration"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			ColumnKind string `json:"columnKind"`
			Results    []struct {
				RuleID    string                 `json:"ruleId"`
				RuleIndex *int                   `json:"ruleIndex"`
				Level     string                 `json:"level"`
				Message   *struct{ Text string } `json:"message"`
				Locations []struct {
					PhysicalLocation *struct {
						ArtifactLocation *struct {
							URI       string `json:"uri"`
							URIBaseID string `json:"uriBaseId"`
						} `json:"artifactLocation"`
						Region *struct {
							StartLine, StartColumn, EndLine, EndColumn int
							Snippet                                    *struct{ Text string }
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
				PartialFingerprints map[string]string `json:"partialFingerprints"`
				Suppressions        []struct {
					Kind string `json:"kind"`
				} `json:"suppressions"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(b.Bytes(), &log); err != nil {
		t.Fatalf("SARIF does not decode: %v", err)
	}
	if log.Schema == nil || !strings.Contains(*log.Schema, "sarif-schema-2.1.0") {
		t.Errorf("$schema = %v", log.Schema)
	}
	if log.Version == nil || *log.Version != "2.1.0" {
		t.Errorf("version = %v, want 2.1.0", log.Version)
	}
	if len(log.Runs) != 1 {
		t.Fatalf("%d runs, want 1", len(log.Runs))
	}
	run := log.Runs[0]
	if run.Tool == nil || run.Tool.Driver == nil || run.Tool.Driver.Name == "" {
		t.Fatal("run.tool.driver.name is required")
	}
	if !slices.Contains([]string{"utf16CodeUnits", "unicodeCodePoints"}, run.ColumnKind) {
		t.Errorf("columnKind %q", run.ColumnKind)
	}
	rules := run.Tool.Driver.Rules
	ids := map[string]bool{}
	for _, r := range rules {
		if r.ID == "" || ids[r.ID] {
			t.Errorf("rule id %q empty or duplicate", r.ID)
		}
		ids[r.ID] = true
		if r.ShortDescription == nil || r.ShortDescription.Text == "" {
			t.Errorf("rule %s: no shortDescription", r.ID)
		}
		if r.DefaultConfiguration == nil || !validLevel(r.DefaultConfiguration.Level) {
			t.Errorf("rule %s: defaultConfiguration.level missing or invalid", r.ID)
		}
	}
	for _, want := range []string{"GOV-001", "GOV-002", "GOV-003", "AI-001", "AI-002", "ORG-001", "ORG-002"} {
		if !ids[want] {
			t.Errorf("rule %s missing from the driver's rules", want)
		}
	}
	if len(run.Results) != len(rep.Findings) {
		t.Fatalf("%d results for %d findings", len(run.Results), len(rep.Findings))
	}
	fps := map[string]bool{}
	for i, r := range run.Results {
		if r.Message == nil || r.Message.Text == "" {
			t.Errorf("result %d: message.text is required", i)
		}
		if r.RuleIndex == nil || *r.RuleIndex < 0 || *r.RuleIndex >= len(rules) || rules[*r.RuleIndex].ID != r.RuleID {
			t.Errorf("result %d (%s): ruleIndex %v does not point at its rule", i, r.RuleID, r.RuleIndex)
		}
		if !validLevel(r.Level) {
			t.Errorf("result %d: level %q", i, r.Level)
		}
		if len(r.Locations) != 1 || r.Locations[0].PhysicalLocation == nil {
			t.Fatalf("result %d: want one physical location", i)
		}
		pl := r.Locations[0].PhysicalLocation
		if pl.ArtifactLocation == nil || pl.ArtifactLocation.URI == "" || strings.HasPrefix(pl.ArtifactLocation.URI, "/") ||
			strings.Contains(pl.ArtifactLocation.URI, "://") || pl.ArtifactLocation.URIBaseID != "SRCROOT" {
			t.Errorf("result %d: artifactLocation %+v, want a relative uri under SRCROOT", i, pl.ArtifactLocation)
		}
		reg := pl.Region
		if reg == nil || reg.StartLine < 1 || reg.StartColumn < 1 || reg.EndLine < reg.StartLine ||
			(reg.EndLine == reg.StartLine && reg.EndColumn < reg.StartColumn) {
			t.Errorf("result %d: region %+v", i, reg)
		}
		fp := r.PartialFingerprints[SARIFFingerprintKey]
		if len(fp) != 32 || fps[fp] {
			t.Errorf("result %d: fingerprint %q missing or not unique", i, fp)
		}
		fps[fp] = true
		for _, s := range r.Suppressions {
			if s.Kind != "inSource" && s.Kind != "external" {
				t.Errorf("result %d: suppression kind %q", i, s.Kind)
			}
		}
	}
}

func validLevel(l string) bool {
	return slices.Contains([]string{"none", "note", "warning", "error"}, l)
}

// Fingerprints do not move with the code: lines added above a finding keep it.
func TestFingerprintsStable(t *testing.T) {
	root := fixtureTree(t)
	before := fingerprints(scanFixture(t, root, nil))
	for _, f := range []string{"src/app/checkout/pay.ts", "supabase/migrations/20240101000000_cleanup.sql", "app/worker.py", "config/app.yaml"} {
		p := filepath.Join(root, f)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		comment := "# moved\n\n"
		if strings.HasSuffix(f, ".ts") {
			comment = "// moved\n\n"
		} else if strings.HasSuffix(f, ".sql") {
			comment = "-- moved\n\n"
		}
		if err := os.WriteFile(p, append([]byte(comment), data...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	after := fingerprints(scanFixture(t, root, nil))
	if !slices.Equal(before, after) {
		t.Errorf("fingerprints changed when lines moved:\nbefore %v\nafter  %v", before, after)
	}
}

func fingerprints(r *Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Fingerprint)
	}
	slices.Sort(out)
	return out
}
