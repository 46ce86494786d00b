package bus_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ci/sluice/internal/bus"
)

// BenchmarkSyncInterval measures what `sluice auth init --sync-always` costs: synchronous
// 256-byte publishes to a file-store stream on the server's default fsync interval (two
// minutes: an acknowledged write can be lost on power loss) and on sync_interval: always
// (every write is on disk before its ack).
func BenchmarkSyncInterval(b *testing.B) {
	for _, mode := range []string{"default", "always"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			js := fmt.Sprintf("store_dir: %q", filepath.Join(dir, "js"))
			if mode == "always" {
				js += ", sync_interval: always"
			}
			conf := filepath.Join(dir, "nats.conf")
			if err := os.WriteFile(conf, []byte("jetstream: {"+js+"}\n"), 0o600); err != nil {
				b.Fatal(err)
			}
			emb, err := bus.StartEmbedded(b.Context(), bus.EmbeddedOptions{ConfigFile: conf, Listen: "127.0.0.1:-1"})
			if err != nil {
				b.Fatal(err)
			}
			defer emb.Shutdown()
			nc, err := bus.Connect(b.Context(), bus.ConnectOptions{URL: emb.ClientURL()})
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			j, err := jetstream.New(nc)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := j.CreateStream(b.Context(), jetstream.StreamConfig{Name: "SYNC", Subjects: []string{"sync.>"}, Storage: jetstream.FileStorage}); err != nil {
				b.Fatal(err)
			}
			data := make([]byte, 256)
			lat := make([]time.Duration, 0, b.N)
			start := time.Now()
			for b.Loop() {
				t := time.Now()
				if _, err := j.Publish(b.Context(), "sync.x", data); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "publish-p50-us")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "publish-p99-us")
			b.ReportMetric(float64(len(lat))/time.Since(start).Seconds(), "publishes/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
