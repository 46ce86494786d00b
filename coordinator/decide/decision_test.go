package decide

import (
	"reflect"
	"testing"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// Every field of a later decision must survive Merge: a field added to Decision without a
// line in Merge fails here, instead of being dropped from batches.
func TestMergeKeepsEveryFieldOfBothDecisions(t *testing.T) {
	filled := func(tag string) Decision {
		var d Decision
		v := reflect.ValueOf(&d).Elem()
		for i := range v.NumField() {
			f := v.Field(i)
			switch f.Kind() {
			case reflect.Bool:
				f.SetBool(true)
			case reflect.Slice:
				f.Set(reflect.MakeSlice(f.Type(), 1, 1))
				elem := f.Index(0)
				if elem.Kind() == reflect.Pointer {
					elem.Set(reflect.New(elem.Type().Elem()))
				}
			case reflect.Pointer:
				f.Set(reflect.New(f.Type().Elem()))
			default:
				t.Fatalf("Decision.%s is a %s: teach this test (and Merge) about it", v.Type().Field(i).Name, f.Kind())
			}
		}
		d.State.Id = tag
		return d
	}
	var merged Decision
	merged.Merge(filled("first"))
	merged.Merge(filled("second"))
	v := reflect.ValueOf(merged)
	for i := range v.NumField() {
		name, f := v.Type().Field(i).Name, v.Field(i)
		switch f.Kind() {
		case reflect.Bool:
			if !f.Bool() {
				t.Errorf("Merge dropped %s", name)
			}
		case reflect.Slice:
			if f.Len() != 2 {
				t.Errorf("Merge kept %d of the 2 entries of %s", f.Len(), name)
			}
		}
	}
	if merged.State.GetId() != "second" {
		t.Errorf("merged state is %q, want the later decision's", merged.State.GetId())
	}
	var empty Decision
	empty.Merge(Decision{Release: []LockOp{{Group: "g"}}})
	if empty.State != nil {
		t.Error("merging a decision without a state made one up")
	}
	later := Decision{State: &sluicev1.RunState{Id: "x"}}
	later.Merge(Decision{})
	if later.State.GetId() != "x" {
		t.Error("merging a decision without a state dropped the earlier state")
	}
}
