package bus

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A create that took effect but was never answered times out; the next try finds the asset
// and succeeds. Errors a retry cannot mend end provisioning at once.
func TestProvisionOneRetriesOnlyTimeouts(t *testing.T) {
	tests := []struct {
		name  string
		errs  []error // what each try returns; past the end, nil
		tries int
		want  error
	}{
		{"unanswered twice", []error{context.DeadlineExceeded, jetstream.ErrJetStreamNotEnabled}, 3, nil},
		{"bad config", []error{jetstream.ErrStreamNameAlreadyInUse}, 1, jetstream.ErrStreamNameAlreadyInUse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tries := 0
			err := provisionOne(t.Context(), "stream X", func(ctx context.Context) error {
				tries++
				if _, ok := ctx.Deadline(); !ok {
					t.Error("a try has no deadline")
				}
				if tries <= len(tt.errs) {
					return tt.errs[tries-1]
				}
				return nil
			})
			if tries != tt.tries || !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("%d tries, %v; want %d tries, %v", tries, err, tt.tries, tt.want)
			}
		})
	}
	t.Run("until ctx ends", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 600*time.Millisecond)
		defer cancel()
		err := provisionOne(ctx, "stream X", func(context.Context) error { return context.DeadlineExceeded })
		if err == nil || ctx.Err() == nil {
			t.Fatalf("provisioning against a server that never answers returned %v before its ctx ended", err)
		}
	})
}
