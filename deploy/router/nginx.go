package router

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Nginx drives the weights of two servers of an upstream block in an nginx config file: it
// rewrites the file, has nginx test the whole configuration, and reloads. A configuration
// nginx rejects is never left behind: the previous file is restored and the step fails.
//
// The upstream block holds one server directive per line. A server is the stable or canary
// one when its address, or the host part of its address, or a word of a trailing comment
// equals Stable or Canary: `server 10.0.0.5:8080; # green`.
//
// nginx has no weight 0: a server whose share is 0 is marked `down`.
type Nginx struct {
	// Config is the file holding the upstream block.
	Config         string
	Upstream       string
	Stable, Canary string
	// Bin is the nginx binary (default "nginx" on PATH).
	Bin string
	// Args come before -t and -s reload, e.g. -c /path/nginx.conf -p /prefix for an nginx
	// not started from its default configuration.
	Args []string

	mu sync.Mutex
}

// SetWeight gives the canary weight w and the stable server 100-w, then tests and reloads.
func (n *Nginx) SetWeight(ctx context.Context, w int) error {
	if err := checkWeight(w); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	old, err := os.ReadFile(n.Config)
	if err != nil {
		return fmt.Errorf("nginx config: %w", err)
	}
	updated, err := RewriteUpstream(old, n.Upstream, map[string]int{n.Stable: 100 - w, n.Canary: w})
	if err != nil {
		return fmt.Errorf("nginx config %s: %w", n.Config, err)
	}
	if err := writeFileAtomic(n.Config, updated); err != nil {
		return err
	}
	if out, err := n.run(ctx, "-t"); err != nil {
		if rerr := writeFileAtomic(n.Config, old); rerr != nil {
			return fmt.Errorf("nginx -t failed (%w: %s) and restoring %s failed too: %w", ErrConfigTest, out, n.Config, rerr)
		}
		return fmt.Errorf("set weight %d: %w (previous %s restored): %s", w, ErrConfigTest, n.Config, out)
	}
	if out, err := n.run(ctx, "-s", "reload"); err != nil {
		// The new file passed -t but was not loaded; put the old one back so file and
		// running nginx keep agreeing.
		if rerr := writeFileAtomic(n.Config, old); rerr != nil {
			return fmt.Errorf("nginx -s reload: %w: %s; restoring %s failed too: %w", err, out, n.Config, rerr)
		}
		return fmt.Errorf("nginx -s reload (previous %s restored): %w: %s", n.Config, err, out)
	}
	return nil
}

// Weight reads the canary's share back from the config file.
func (n *Nginx) Weight(_ context.Context) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	data, err := os.ReadFile(n.Config)
	if err != nil {
		return 0, fmt.Errorf("nginx config: %w", err)
	}
	ws, err := UpstreamWeights(data, n.Upstream, n.Stable, n.Canary)
	if err != nil {
		return 0, fmt.Errorf("nginx config %s: %w", n.Config, err)
	}
	return share(ws[n.Stable], ws[n.Canary])
}

func (n *Nginx) run(ctx context.Context, args ...string) (string, error) {
	bin := n.Bin
	if bin == "" {
		bin = "nginx"
	}
	cmd := exec.CommandContext(ctx, bin, append(append([]string{}, n.Args...), args...)...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// writeFileAtomic replaces path with data through a rename, keeping path's mode, so nginx
// never reads a half-written file.
func writeFileAtomic(path string, data []byte) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

var upstreamStart = regexp.MustCompile(`^\s*upstream\s+(\S+)\s*\{\s*(#.*)?$`)

// serverLine is a server directive on one line of an upstream block.
type serverLine struct {
	indent, addr string
	params       []string
	comment      string
}

func parseServer(line string) (serverLine, bool) {
	body, comment, _ := strings.Cut(line, "#")
	trimmed := strings.TrimLeft(body, " \t")
	fields := strings.Fields(strings.TrimSuffix(strings.TrimSpace(trimmed), ";"))
	if len(fields) < 2 || fields[0] != "server" || !strings.HasSuffix(strings.TrimSpace(trimmed), ";") {
		return serverLine{}, false
	}
	return serverLine{indent: body[:len(body)-len(trimmed)], addr: fields[1], params: fields[2:], comment: comment}, true
}

func (s serverLine) names(name string) bool {
	if s.addr == name {
		return true
	}
	if host, _, ok := strings.Cut(s.addr, ":"); ok && host == name {
		return true
	}
	return strings.Contains(" "+strings.Join(strings.Fields(s.comment), " ")+" ", " "+name+" ")
}

func (s serverLine) weight() int {
	for _, p := range s.params {
		if p == "down" {
			return 0
		}
	}
	for _, p := range s.params {
		if v, ok := strings.CutPrefix(p, "weight="); ok {
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		}
	}
	return 1 // nginx's default
}

func (s serverLine) withWeight(w int) string {
	params := []string{}
	for _, p := range s.params {
		if p != "down" && !strings.HasPrefix(p, "weight=") {
			params = append(params, p)
		}
	}
	if w == 0 {
		params = append(params, "down")
	} else {
		params = append(params, "weight="+strconv.Itoa(w))
	}
	line := s.indent + "server " + s.addr + " " + strings.Join(params, " ") + ";"
	if s.comment != "" {
		line += " #" + strings.TrimRight(s.comment, " \t")
	}
	return line
}

// upstreamServers finds the server lines of the named upstream block: line index -> server.
func upstreamServers(lines []string, upstream string) (map[int]serverLine, error) {
	for i, l := range lines {
		m := upstreamStart.FindStringSubmatch(l)
		if m == nil || m[1] != upstream {
			continue
		}
		found := map[int]serverLine{}
		for j := i + 1; j < len(lines); j++ {
			body, _, _ := strings.Cut(lines[j], "#")
			if strings.TrimSpace(body) == "}" {
				return found, nil
			}
			if s, ok := parseServer(lines[j]); ok {
				found[j] = s
			}
		}
		return nil, fmt.Errorf("upstream %s: no closing brace", upstream)
	}
	return nil, fmt.Errorf("no `upstream %s {` block: %w", upstream, ErrServerNotFound)
}

// find returns the line of the one server that names name.
func find(servers map[int]serverLine, upstream, name string) (int, error) {
	at := -1
	for i, s := range servers {
		if !s.names(name) {
			continue
		}
		if at >= 0 {
			return 0, fmt.Errorf("upstream %s: more than one server matches %q", upstream, name)
		}
		at = i
	}
	if at < 0 {
		return 0, fmt.Errorf("upstream %s: %q: %w", upstream, name, ErrServerNotFound)
	}
	return at, nil
}

// RewriteUpstream sets the weights of the named servers of an upstream block (0 marks a
// server down) and leaves every other byte of the file as it was.
func RewriteUpstream(conf []byte, upstream string, weights map[string]int) ([]byte, error) {
	lines := strings.Split(string(conf), "\n")
	servers, err := upstreamServers(lines, upstream)
	if err != nil {
		return nil, err
	}
	used := map[int]string{}
	for name, w := range weights {
		at, err := find(servers, upstream, name)
		if err != nil {
			return nil, err
		}
		if other, ok := used[at]; ok {
			return nil, fmt.Errorf("upstream %s: %q and %q match the same server %s", upstream, other, name, servers[at].addr)
		}
		used[at] = name
		lines[at] = servers[at].withWeight(w)
	}
	return []byte(strings.Join(lines, "\n")), nil
}

// UpstreamWeights reads the weights of the named servers of an upstream block (0 for down).
func UpstreamWeights(conf []byte, upstream string, names ...string) (map[string]int, error) {
	lines := strings.Split(string(conf), "\n")
	servers, err := upstreamServers(lines, upstream)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, name := range names {
		at, err := find(servers, upstream, name)
		if err != nil {
			return nil, err
		}
		out[name] = servers[at].weight()
	}
	return out, nil
}
