package coordinator

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// A spec submitted again is checked once, and what the check remembers is never shared with
// a run nor kept for a spec it refused.
func TestValidSpecRemembersCheckedSpecs(t *testing.T) {
	c := &Coordinator{}
	good := &sluicev1.PipelineSpec{Version: 1, Name: "p", Stages: []*sluicev1.StageSpec{{Name: "lint", Kind: sluicev1.StageKind_STAGE_KIND_STATIC, Run: []string{"true"}}}}
	first, err := c.validSpec(&sluicev1.SubmitRunRequest{Spec: good})
	if err != nil {
		t.Fatal(err)
	}
	first.Stages[0].Name = "changed by the first run"
	second, err := c.validSpec(&sluicev1.SubmitRunRequest{Spec: good})
	if err != nil {
		t.Fatal(err)
	}
	if got := second.GetStages()[0].GetName(); got != "lint" {
		t.Fatalf("the second submission's stage is %q: a run changed the remembered spec", got)
	}
	fresh, err := (&Coordinator{}).validSpec(&sluicev1.SubmitRunRequest{Spec: good})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(second, fresh) {
		t.Fatalf("remembered spec differs from a fresh check:\n%v\n%v", second, fresh)
	}

	bad := &sluicev1.PipelineSpec{Version: 1, Name: "p", Stages: []*sluicev1.StageSpec{{Name: "a", Kind: sluicev1.StageKind_STAGE_KIND_STATIC, Run: []string{"true"}, Needs: []string{"missing"}}}}
	for i := range 2 {
		if _, err := c.validSpec(&sluicev1.SubmitRunRequest{Spec: bad}); !errors.Is(err, ErrBadRequest) {
			t.Fatalf("submission %d of a spec needing a missing stage: err = %v, want ErrBadRequest", i+1, err)
		}
	}
	if len(c.specs.m) != 1 {
		t.Fatalf("%d specs remembered, want only the one that passed", len(c.specs.m))
	}
}

func TestCheckedSpecsStayBounded(t *testing.T) {
	var s checkedSpecs
	for i := range maxCheckedSpecs * 3 {
		p := &sluicev1.PipelineSpec{Version: 1, Name: fmt.Sprintf("p%d", i), Stages: []*sluicev1.StageSpec{{Name: "lint", Kind: sluicev1.StageKind_STAGE_KIND_STATIC, Run: []string{"true"}}}}
		if _, err := s.check(p); err != nil {
			t.Fatal(err)
		}
		if len(s.m) > maxCheckedSpecs {
			t.Fatalf("%d specs remembered, bound %d", len(s.m), maxCheckedSpecs)
		}
	}
}
