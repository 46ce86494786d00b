package spec

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sluice-ci/sluice/internal/strictyaml"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// checkNeeds reports needs that name no stage, the stage itself or a stage twice, and every
// cycle, each at the line of the offending needs entry.
func (d *decoder) checkNeeds(graph []stageNodes) {
	names := make([]string, len(graph))
	defined := make(map[string]bool, len(graph))
	for i, g := range graph {
		names[i] = g.stage.Name
		defined[g.stage.Name] = true
	}
	where := map[[2]string]int{} // (stage, need) -> index in needs, for cycle errors
	edges := make(map[string][]string, len(graph))
	for _, g := range graph {
		s := g.stage
		path := join(join("stages", s.Name), "needs")
		for i, need := range s.Needs {
			n := g.needs[i]
			switch _, dup := where[[2]string{s.Name, need}]; {
			case need == s.Name:
				d.Errorf(n, path, "stage %q needs itself: remove it from needs", need)
			case !defined[need]:
				d.Errorf(n, path, "unknown stage %q %s", need, strictyaml.Hint(need, names, "stages"))
			case dup:
				d.Errorf(n, path, "stage %q is listed twice: remove one", need)
			default:
				where[[2]string{s.Name, need}] = i
				edges[s.Name] = append(edges[s.Name], need)
			}
		}
	}
	nodes := make(map[string]stageNodes, len(graph))
	for _, g := range graph {
		nodes[g.stage.Name] = g
	}
	for _, c := range cycles(names, edges) {
		g := nodes[c[0]]
		d.Errorf(g.needs[where[[2]string{c[0], c[1]}]], join(join("stages", c[0]), "needs"), "%s", cycleText(c))
	}
}

// cycles finds the cycles of the graph (an edge a -> b means a needs b), each as a path that
// starts and ends at the member that comes first in order, once per distinct cycle.
func cycles(order []string, edges map[string][]string) [][]string {
	pos := make(map[string]int, len(order))
	for i, n := range order {
		pos[n] = i
	}
	const (
		unvisited = iota
		onStack
		done
	)
	state := make(map[string]int, len(order))
	var (
		stack []string
		found [][]string
		seen  = map[string]bool{}
	)
	var visit func(n string)
	visit = func(n string) {
		state[n] = onStack
		stack = append(stack, n)
		for _, m := range edges[n] {
			switch state[m] {
			case unvisited:
				visit(m)
			case onStack:
				c := slices.Clone(stack[slices.Index(stack, m):])
				first := 0
				for i, x := range c {
					if pos[x] < pos[c[first]] {
						first = i
					}
				}
				c = append(c[first:], c[:first]...)
				c = append(c, c[0])
				if key := strings.Join(c, "\x00"); !seen[key] {
					seen[key] = true
					found = append(found, c)
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
	}
	for _, n := range order {
		if state[n] == unvisited {
			visit(n)
		}
	}
	return found
}

func cycleText(c []string) string {
	names := make([]string, len(c))
	for i, n := range c {
		names[i] = strictyaml.Printable(n)
	}
	return "cycle: " + strings.Join(names, " -> ") + ": remove one of these needs"
}

// TopoOrder returns the stage names so that every stage comes after all it needs: at each point
// the first stage in file order whose needs are all placed. It fails on a need that names no
// stage and on a cycle.
func TopoOrder(p *sluicev1.PipelineSpec) ([]string, error) {
	order := make([]string, len(p.GetStages()))
	index := make(map[string]*sluicev1.StageSpec, len(order))
	edges := make(map[string][]string, len(order))
	for i, s := range p.GetStages() {
		order[i] = s.GetName()
		index[s.GetName()] = s
	}
	for _, s := range p.GetStages() {
		for _, need := range s.GetNeeds() {
			if index[need] == nil {
				return nil, &Error{File: p.GetFile(), Line: int(s.GetLine()), Field: join(join("stages", s.GetName()), "needs"),
					Msg: fmt.Sprintf("unknown stage %q %s", need, strictyaml.Hint(need, order, "stages"))}
			}
			edges[s.GetName()] = append(edges[s.GetName()], need)
		}
	}
	if c := cycles(order, edges); len(c) > 0 {
		s := index[c[0][0]]
		return nil, &Error{File: p.GetFile(), Line: int(s.GetLine()), Field: join(join("stages", s.GetName()), "needs"), Msg: cycleText(c[0])}
	}
	// Quadratic, but pipelines have tens of stages and the order must be predictable.
	out := make([]string, 0, len(order))
	placed := make(map[string]bool, len(order))
	ready := func(name string) bool {
		return !placed[name] && !slices.ContainsFunc(edges[name], func(n string) bool { return !placed[n] })
	}
	for len(out) < len(order) {
		next := order[slices.IndexFunc(order, ready)]
		placed[next] = true
		out = append(out, next)
	}
	return out, nil
}
