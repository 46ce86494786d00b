package auth_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sluice-ci/sluice/internal/auth"
)

// Each node configuration `auth init --cluster` writes is one nats-server accepts: its own
// name, routes to every node, the fleet's operator trust, and fsync on every write when asked.
func TestInitWritesClusterNodeConfigs(t *testing.T) {
	hosts := []string{"nats-1", "nats-2", "nats-3"}
	for _, syncAlways := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "auth")
		if _, err := auth.Init(dir, auth.InitOptions{Cluster: hosts, SyncAlways: syncAlways, ClusterStoreDir: "/srv/js"}); err != nil {
			t.Fatal(err)
		}
		l := auth.Layout{Dir: dir}
		for _, h := range hosts {
			opts, err := server.ProcessConfigFile(l.ClusterConfig(h))
			if err != nil {
				t.Fatalf("nats-server refuses %s: %v", l.ClusterConfig(h), err)
			}
			var routes []string
			for _, u := range opts.Routes {
				routes = append(routes, u.Host)
			}
			switch {
			case opts.ServerName != h || opts.Cluster.Name != "sluice" || opts.Cluster.Port != auth.RoutePort:
				t.Errorf("%s: server %q in cluster %q on route port %d", h, opts.ServerName, opts.Cluster.Name, opts.Cluster.Port)
			case !slices.Equal(routes, []string{"nats-1:6222", "nats-2:6222", "nats-3:6222"}):
				t.Errorf("%s: routes %v", h, routes)
			case !opts.JetStream || opts.StoreDir != "/srv/js" || opts.SyncAlways != syncAlways:
				t.Errorf("%s: jetstream %v store %q sync always %v, want %v", h, opts.JetStream, opts.StoreDir, opts.SyncAlways, syncAlways)
			case len(opts.TrustedOperators) != 1 || opts.SystemAccount == "":
				t.Errorf("%s: %d trusted operators, system account %q: the node must include the fleet's auth.conf", h, len(opts.TrustedOperators), opts.SystemAccount)
			case opts.Port != auth.ClientPort || opts.HTTPPort != auth.MonitorPort:
				t.Errorf("%s: client port %d, monitoring %d", h, opts.Port, opts.HTTPPort)
			}
		}
	}
}

func TestInitRefusesABadClusterHost(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	_, err := auth.Init(dir, auth.InitOptions{Cluster: []string{"nats-1", "bad host/../x"}})
	if !errors.Is(err, auth.ErrBadName) {
		t.Fatalf("auth init with a bad host: %v, want ErrBadName", err)
	}
	if _, serr := os.Stat(filepath.Join(dir, "keys")); serr == nil {
		t.Fatal("a refused init left keys behind")
	}
}
