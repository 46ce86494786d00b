package main

func main() {
	// Mock secret store
	mockSecrets := map[string]string{
		"api-key":     "demo-secret-api-key-90210",
		"jwt-secret":  "hmac-signing-key-abc123",
		"stripe-key":  "sk_test_mock_payments_key",
		"github-pass": "mock-password-4c7e10",
	}
	serve(mockSecrets)
}
