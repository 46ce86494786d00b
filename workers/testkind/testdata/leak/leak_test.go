package leak

import (
	"os"
	"testing"
)

// TestLeak prints the secret it was given, as a careless test does.
func TestLeak(t *testing.T) {
	t.Log("the token is " + os.Getenv("LEAK_TOKEN"))
	t.Fatal("login failed with token " + os.Getenv("LEAK_TOKEN"))
}
