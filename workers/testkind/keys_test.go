package testkind

import "testing"

func TestKeys(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{TimingKey("web-app", "test", "example.com/suite/alpha"), "web-app.test.example.com/suite/alpha"},
		{TimingKey("p", "s", "tests/test_api.py::TestX::test y[1]"), "p.s.tests/test_api.py__TestX__test_y_1_"},
		{TimingKey("p", "s", ".hidden..x."), "p.s._.hidden._.x._"},
		{TimingKey("p", "s", ""), "p.s._"},
		{SplitKey("01HRUN", "unit tests", 2), "split.01HRUN.unit_tests.2"},
	} {
		if tc.got != tc.want {
			t.Errorf("key %q, want %q", tc.got, tc.want)
		}
	}
}
