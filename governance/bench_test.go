package governance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The benchmark of issue 3: a generated tree of mixed languages (10,000 files, about
// 200 MB) scanned with every pack on. It reports MB/s (from SetBytes) and the peak heap
// and peak memory the Go runtime held during the scans, sampled every millisecond, and the
// throughput per CPU-second; the 1,000-file tree shows that memory does not grow with the
// tree.
//
//	go test -run '^$' -bench Scan -benchtime 3x ./governance/

func BenchmarkScan(b *testing.B) {
	for _, files := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("files=%d", files), func(b *testing.B) {
			root, size := generateTree(b, files, 20<<10)
			e, err := New(Config{})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(size)
			debug.FreeOSMemory() // the generator's garbage is not the scan's
			peak := sampleMemory(b.Context())
			cpu0 := cpuTime(b)
			var rep *Report
			for b.Loop() {
				if rep, err = e.Scan(context.Background(), root); err != nil {
					b.Fatal(err)
				}
			}
			cpu := cpuTime(b) - cpu0
			heap, total := peak()
			b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MB")
			b.ReportMetric(float64(total)/(1<<20), "peak-runtime-MB")
			b.ReportMetric(float64(rep.Stats.Files)*float64(b.N)/b.Elapsed().Seconds(), "files/s")
			// Throughput per CPU-second: what the engine costs, whatever else the shared
			// machine runs at the time.
			b.ReportMetric(float64(size)*float64(b.N)/(1<<20)/cpu.Seconds(), "MB/cpu-s")
			if rep.Stats.Files != files || len(rep.Active()) == 0 {
				b.Fatalf("scanned %d files with %d findings, want %d files and some findings", rep.Stats.Files, len(rep.Active()), files)
			}
		})
	}
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sampleMemory samples the runtime's heap (live and unswept objects) and the memory it
// holds from the OS (everything it mapped but what it released) until stop is called, and
// returns the peaks.
func sampleMemory(ctx context.Context) (stop func() (heap, total uint64)) {
	ctx, cancel := context.WithCancel(ctx)
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	var heap, total uint64
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(samples)
			heap = max(heap, samples[0].Value.Uint64())
			total = max(total, samples[1].Value.Uint64()-samples[2].Value.Uint64())
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return func() (uint64, uint64) {
		cancel()
		wg.Wait()
		return heap, total
	}
}

// langTemplate is a chunk of realistic code, repeated (with its N replaced) to fill a file.
type langTemplate struct {
	ext    string
	share  int // out of 100
	chunk  string
	extras []string // one of these is added to some files: things the rules find
}

var benchLangs = []langTemplate{
	{ext: ".ts", share: 25, chunk: `import { z } from 'zod'

// UserServiceN loads users and their sessions; the token comes from the request.
export class UserServiceN {
  constructor(private readonly db: Database, private readonly cache: Cache) {}

  async find(id: string): Promise<User | null> {
    const token = this.cache.get("session:" + id)
    if (!token) {
      return null
    }
    const rows = await this.db.query('select * from users where id = $1', [id])
    for (const row of rows) {
      if (row.active && row.verified) {
        return { id: row.id, name: row.name, email: row.email }
      }
    }
    return null
  }

  validate(input: unknown) {
    const schema = z.object({ email: z.string().email(), password: z.string().min(12) })
    return schema.safeParse(input)
  }
}

export const routesN = [1, 2, 3].map((n) => ({ path: '/api/v' + n, handler: (req: Request) => req.url }))
`, extras: []string{
		"const stripe = new Stripe(\"@@STRIPE_LIVE@@\")\n",
		"// TODO(ai): handle the retry case\n",
		"export const admin = createClient(url, process.env.SUPABASE_SERVICE_ROLE_KEY!)\n",
		"if (a) {\n  if (b) {\n    if (c) {\n      if (d) {\n        run()\n      }\n    }\n  }\n}\n",
	}},
	{ext: ".go", share: 20, chunk: `package svcN

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotFoundN is returned when the record does not exist.
var ErrNotFoundN = errors.New("not found")

// Store keeps records by key; the password hash is never returned.
type Store struct {
	items map[string]Record
}

func (s *Store) Get(ctx context.Context, key string) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, fmt.Errorf("get %s: %w", key, err)
	}
	r, ok := s.items[key]
	if !ok {
		return Record{}, ErrNotFoundN
	}
	for _, tag := range r.Tags {
		switch tag {
		case "archived":
			return Record{}, ErrNotFoundN
		}
	}
	return r, nil
}
`, extras: []string{
		"const slackToken = \"@@SLACK_BOT@@\"\n",
		"/* AI-TODO: wire the cache */\n",
	}},
	{ext: ".py", share: 20, chunk: `"""Jobs of module N."""
import os


class JobN:
    def __init__(self, queue, token=None):
        self.queue = queue
        self.token = token or os.environ.get("API_TOKEN")

    def run(self, items):
        for item in items:
            if item.ready:
                try:
                    self.queue.put(item)
                except Exception as exc:  # keep going
                    print("failed", exc)
        return {"count": len(items), "status": "ok"}


def load(path):
    with open(path) as f:
        return [line.strip() for line in f if line and not line.startswith("#")]
`, extras: []string{
		"DB_PASSWORD = \"@@GENERIC@@\"\n",
		"# TODO(copilot): validate input\n",
	}},
	{ext: ".java", share: 10, chunk: `package com.example.svcN;

import java.util.List;

/** Orders of service N. */
public class OrderServiceN {
    private final Repository repo;

    public OrderServiceN(Repository repo) { this.repo = repo; }

    public int total(List<Order> orders) {
        int sum = 0;
        for (Order o : orders) {
            if (o.isPaid()) {
                sum += o.amount();
            } else if (o.isPending()) {
                sum += 0;
            }
        }
        return sum;
    }
}
`},
	{ext: ".sql", share: 5, chunk: `-- migration N
CREATE TABLE IF NOT EXISTS events_N (
  id bigserial PRIMARY KEY,
  user_id uuid REFERENCES users (id),
  payload jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_N_user_idx ON events_N (user_id);
INSERT INTO audit_log (action, detail) VALUES ('create', 'events_N created; DROP TABLE is not run');
DROP TABLE IF EXISTS events_N_staging;
`, extras: []string{"DROP TABLE users;\n"}},
	{ext: ".yaml", share: 5, chunk: `# service N
service:
  name: svc-N
  replicas: 3
  env:
    - name: DATABASE_URL
      valueFrom: {secretKeyRef: {name: db, key: url}}
    - name: LOG_LEVEL
      value: info
  resources: {limits: {cpu: "1", memory: 512Mi}}
`, extras: []string{"aws_secret_access_key: @@AWS_SECRET@@\n"}},
	{ext: ".json", share: 5, chunk: `{"name": "pkg-N", "version": "1.0.N", "scripts": {"build": "tsc -p .", "test": "vitest run"},
 "dependencies": {"zod": "^3.22.0", "stripe": "^14.0.0"}, "config": {"apiUrl": "https://api.example.com/vN"}}
`},
	{ext: ".md", share: 5, chunk: `## Section N

Set STRIPE_SECRET_KEY to a test key (sk_test_...) and run the migrations. The service
reads its token from the environment; never commit one. See TODO(ai) markers policy.

`},
	{ext: ".rs", share: 5, chunk: `// module N
pub fn parse_N(input: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in input.split(',') {
        match part.trim().parse::<u32>() {
            Ok(v) => {
                if v > 0 {
                    out.push(v);
                }
            }
            Err(e) => return Err(format!("bad {}: {}", part, e)),
        }
    }
    Ok(out)
}
`},
}

// generateTree writes files files of about avg bytes each, in directories of 100, and
// returns the root and the total size. About one file in 50 gets an extra that a rule
// finds.
func generateTree(b *testing.B, files, avg int) (string, int64) {
	b.Helper()
	root := b.TempDir()
	var weighted []*langTemplate
	for i := range benchLangs {
		for range benchLangs[i].share {
			weighted = append(weighted, &benchLangs[i])
		}
	}
	var total int64
	var buf strings.Builder
	for i := range files {
		l := weighted[i%len(weighted)]
		dir := filepath.Join(root, "pkg"+strconv.Itoa(i/100))
		if i%100 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		buf.Reset()
		n := strconv.Itoa(i)
		for k := 0; buf.Len() < avg; k++ {
			buf.WriteString(strings.ReplaceAll(l.chunk, "N", n+"_"+strconv.Itoa(k)))
		}
		if len(l.extras) > 0 && i%50 == 7 {
			buf.WriteString(withFakes(l.extras[(i/50)%len(l.extras)]))
		}
		name := filepath.Join(dir, "file"+n+l.ext)
		if err := os.WriteFile(name, []byte(buf.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(buf.Len())
	}
	return root, total
}
