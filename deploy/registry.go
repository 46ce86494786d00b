package deploy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/sluice-ci/sluice/deploy/internal/unregister"
)

// RouterModule is a router New can build, registered under Name with RegisterRouter.
type RouterModule struct {
	// Name is the router's RouterConfig.Type.
	Name string
	// Needs lists the RouterConfig fields the router cannot do without, by their names in a
	// pipeline file: stable, canary, admin, config, upstream, socket, backend. NewRouter
	// refuses a config without one of them and `sluice lint` reports it.
	Needs []string
	// New builds the router from a config that has every field in Needs.
	New func(RouterConfig, Options) (Router, error)
}

// ProviderModule is a metrics provider New can build, registered under Name with
// RegisterProvider.
type ProviderModule struct {
	// Name is the provider's ProviderConfig.Type.
	Name string
	// Needs lists the ProviderConfig fields the provider cannot do without, by their names in
	// a pipeline file: url.
	Needs []string
	// New builds the provider for a measurement whose Provider has every field in Needs.
	New func(Measurement, Options) (Provider, error)
}

// JudgeModule is a judge New can build, registered under Name with RegisterJudge.
type JudgeModule struct {
	// Name is the judge's JudgeConfig.Type.
	Name string
	// Samples says the judge compares latency samples, so providers must measure them.
	Samples bool
	// New builds the judge of an analysis's metrics.
	New func(JudgeConfig, []Metric) (Judge, error)
}

// Measurement is what an analysis asks its provider to measure each interval.
type Measurement struct {
	// Provider is the analysis's provider block.
	Provider ProviderConfig
	// Metrics are the metrics the judge reads, the request count among them when the judge
	// has MinSamples. A provider refuses one it cannot measure.
	Metrics []Metric
	// Samples asks for latency samples (JudgeModule.Samples).
	Samples bool
	// Router is the rollout's router: the backends' names, the builtin router's address.
	Router RouterConfig
}

// Defaults for an analysis that names no provider or no judge.
const (
	DefaultProvider = TypeBuiltin
	DefaultJudge    = TypeThresholds
)

var (
	routers   = &registry[RouterModule, RouterConfig]{what: "router", fields: routerFields}
	providers = &registry[ProviderModule, ProviderConfig]{what: "provider", fields: providerFields}
	// Judges have no Needs: their settings are numbers with defaults.
	judges = &registry[JudgeModule, JudgeConfig]{what: "judge"}
)

// The registries are for the life of the program; only deploytest takes a module back out,
// so that one test's module is not in the next test's lists.
func init() {
	unregister.Router = routers.remove
	unregister.Provider = providers.remove
	unregister.Judge = judges.remove
}

// RegisterRouter makes a router available to NewRouter and to pipeline validation. Call it
// from an init function: it panics on a name already taken, an empty name, a nil New or a
// Needs entry that is not a RouterConfig field, since each is a programming error.
func RegisterRouter(m RouterModule) {
	routers.add(m.Name, m, m.New != nil, m.Needs)
}

// RegisterProvider makes a metrics provider available to NewProvider and to pipeline
// validation; it panics as RegisterRouter does.
func RegisterProvider(m ProviderModule) {
	providers.add(m.Name, m, m.New != nil, m.Needs)
}

// RegisterJudge makes a judge available to New and to pipeline validation; it panics as
// RegisterRouter does.
func RegisterJudge(m JudgeModule) {
	judges.add(m.Name, m, m.New != nil, nil)
}

// Routers returns the registered routers' names, sorted.
func Routers() []string { return routers.names() }

// Providers returns the registered metrics providers' names, sorted.
func Providers() []string { return providers.names() }

// Judges returns the registered judges' names, sorted.
func Judges() []string { return judges.names() }

// LookupRouter returns the router registered under name.
func LookupRouter(name string) (RouterModule, bool) { return routers.get(name) }

// LookupProvider returns the metrics provider registered under name.
func LookupProvider(name string) (ProviderModule, bool) { return providers.get(name) }

// routerFields are RouterConfig's fields by their names in a pipeline file, for Needs.
func routerFields(c RouterConfig, name string) (string, bool) {
	switch name {
	case "stable":
		return c.Stable, true
	case "canary":
		return c.Canary, true
	case "admin":
		return c.Admin, true
	case "config":
		return c.Config, true
	case "upstream":
		return c.Upstream, true
	case "socket":
		return c.Socket, true
	case "backend":
		return c.Backend, true
	}
	return "", false
}

// providerFields are ProviderConfig's string fields by their names in a pipeline file.
func providerFields(c ProviderConfig, name string) (string, bool) {
	if name == "url" {
		return c.URL, true
	}
	return "", false
}

// registry holds the modules of one sort by name. C is the config whose fields a module's
// Needs name.
type registry[M, C any] struct {
	what   string
	fields func(C, string) (string, bool)

	mu      sync.RWMutex
	modules map[string]M
}

func (r *registry[M, C]) add(name string, m M, hasNew bool, needs []string) {
	if name == "" || !hasNew {
		panic(fmt.Sprintf("deploy: a %s module needs a name and a New function (got %q)", r.what, name))
	}
	var zero C
	for _, f := range needs {
		if _, ok := r.fields(zero, f); !ok {
			panic(fmt.Sprintf("deploy: %s %q needs %q, which is no %s config field", r.what, name, f, r.what))
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.modules[name]; dup {
		panic(fmt.Sprintf("deploy: %s %q registered twice", r.what, name))
	}
	if r.modules == nil {
		r.modules = map[string]M{}
	}
	r.modules[name] = m
}

func (r *registry[M, C]) remove(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.modules, name)
}

func (r *registry[M, C]) get(name string) (M, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	m, ok := r.modules[name]
	return m, ok
}

func (r *registry[M, C]) names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.modules))
}

// lookup returns the module a config names, or an ErrSpec listing the registered ones.
func (r *registry[M, C]) lookup(name string) (M, error) {
	if m, ok := r.get(name); ok {
		return m, nil
	}
	var zero M
	if name == "" {
		return zero, fmt.Errorf("%w: no %s type: want one of %s", ErrSpec, r.what, strings.Join(r.names(), ", "))
	}
	return zero, fmt.Errorf("%w: %s type %q: want one of %s", ErrSpec, r.what, name, strings.Join(r.names(), ", "))
}

// missing is an ErrSpec naming the fields in needs that c leaves empty, or nil.
func (r *registry[M, C]) missing(name string, c C, needs []string) error {
	var empty []string
	for _, f := range needs {
		if v, _ := r.fields(c, f); v == "" {
			empty = append(empty, f)
		}
	}
	if len(empty) == 0 {
		return nil
	}
	slices.Sort(empty)
	return fmt.Errorf("%w: %s %s needs %s", ErrSpec, name, r.what, strings.Join(empty, ", "))
}
