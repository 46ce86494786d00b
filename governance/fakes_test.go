package governance

import (
	"encoding/base64"
	"math/rand/v2"
	"strings"
)

// Secret-shaped values are built at run time from a fixed seed, never written literally in
// a file of this repository: a scanner run over the repository (this one included) would
// otherwise report its own test data, and hosting services would block the push. Fixture
// files and cases name them as @@NAME@@.

const (
	alnum    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	upperNum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	base32   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	digits   = "0123456789"
)

var fakeRand = rand.New(rand.NewPCG(3, 1415))

func fake(chars string, n int) string {
	var b strings.Builder
	for range n {
		b.WriteByte(chars[fakeRand.IntN(len(chars))])
	}
	return b.String()
}

func jwt(payload string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." +
		enc.EncodeToString([]byte(payload)) + "." + fake(alnum+"-_", 43)
}

func pemBody() string {
	var lines []string
	for range 8 {
		lines = append(lines, fake(b64chars, 64))
	}
	return strings.Join(lines, "\n")
}

// fakes maps each @@NAME@@ to its value. The order of initialisation is fixed, so the values
// (and the fingerprints in golden files) are the same on every run.
var fakes = func() map[string]string {
	m := map[string]string{}
	m["STRIPE_LIVE"] = "sk_" + "live_" + fake(alnum, 24)
	m["STRIPE_RESTRICTED"] = "rk_" + "live_" + fake(alnum, 24)
	m["STRIPE_TEST"] = "sk_" + "test_" + fake(alnum, 24)
	m["AWS_ID"] = "AK" + "IA" + fake(base32, 16)
	m["AWS_SECRET"] = fake(b64chars, 40)
	m["GH_PAT"] = "gh" + "p_" + fake(alnum, 36)
	m["GH_FINE"] = "github_" + "pat_" + fake(alnum, 22) + "_" + fake(alnum, 59)
	m["SLACK_BOT"] = "xo" + "xb-" + fake(digits, 12) + "-" + fake(digits, 13) + "-" + fake(alnum, 24)
	m["SLACK_HOOK"] = "https://hooks.slack.com/services/T" + fake(upperNum, 8) + "/B" + fake(upperNum, 8) + "/" + fake(alnum, 24)
	m["PEM_BODY"] = pemBody()
	m["PEM_JSON"] = strings.ReplaceAll(pemBody(), "\n", `\n`)
	m["JWT_USER"] = jwt(`{"sub":"8f14e45f","role":"authenticated","exp":1893456000}`)
	m["JWT_SERVICE"] = jwt(`{"iss":"supabase","ref":"abcdefghijklmnop","role":"service_role","iat":1700000000}`)
	m["JWT_ANON"] = jwt(`{"iss":"supabase","ref":"abcdefghijklmnop","role":"anon","iat":1700000000}`)
	m["DB_PASS"] = "Zx9" + fake(alnum, 9) + "!"
	m["GENERIC"] = fake(alnum, 12) + "#" + fake(alnum, 8)
	m["GENERIC2"] = fake("abcdef0123456789", 32)
	m["GENERIC3"] = fake(alnum, 28)
	m["K8S_PASS"] = base64.StdEncoding.EncodeToString([]byte("Pw-" + fake(alnum, 14)))
	m["CORP_TOKEN"] = "corp_" + fake("abcdefghijklmnopqrstuvwxyz0123456789", 32)
	m["K8S_STRIPE"] = base64.StdEncoding.EncodeToString([]byte(m["STRIPE_LIVE"]))
	m["JWT_DEMO"] = jwt(`{"iss":"supabase-demo","role":"service_role","exp":1983812996}`)
	m["JWT_LOCAL"] = jwt(`{"iss":"http://localhost:54321/auth/v1","sub":"8f14e45f","role":"authenticated"}`)
	return m
}()

// withFakes replaces every @@NAME@@ in s.
func withFakes(s string) string {
	for k, v := range fakes {
		s = strings.ReplaceAll(s, "@@"+k+"@@", v)
	}
	return s
}

// leakedFake returns the name of a fake secret that text shows whole (any line of it, for
// the multi-line private key), or "".
func leakedFake(text string) string {
	for name, v := range fakes {
		for _, part := range strings.Split(v, "\n") {
			if len(part) >= 12 && strings.Contains(text, part) {
				return name
			}
		}
	}
	return ""
}
