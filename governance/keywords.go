package governance

import (
	"math/bits"
	"slices"
	"strings"
)

// keywordSet finds every occurrence of a set of ASCII keywords in one pass,
// case-insensitively: an Aho-Corasick automaton compiled to a dense DFA over the few byte
// classes the keywords use. Bytes outside every keyword share class 0, which always leads
// back to the root, and upper-case letters share the class of their lower case, so the scan
// needs no lower-cased copy of the input.
type keywordSet struct {
	words []string // lower case, indexed by keyword id
	class [256]uint8
	shift uint     // log2 of the row width
	delta []uint16 // delta[state<<shift | class] = next state
	// States are numbered so that the ones where a keyword ends come last: the hot loop
	// tests a state with one comparison against firstOut.
	firstOut uint16
	out      [][]int32 // keyword ids that end in each state
}

// kwHit is a keyword occurrence: end is the offset just past it.
type kwHit struct {
	end int32
	kw  int32
}

// newKeywordSet compiles words (already lower case, deduplicated, ASCII).
func newKeywordSet(words []string) *keywordSet {
	k := &keywordSet{words: words}
	classes := 1
	for _, w := range words {
		for i := 0; i < len(w); i++ {
			c := w[i]
			if k.class[c] != 0 {
				continue
			}
			k.class[c] = uint8(classes)
			if 'a' <= c && c <= 'z' {
				k.class[c-'a'+'A'] = uint8(classes)
			}
			classes++
		}
	}
	k.shift = uint(bits.Len(uint(classes - 1)))
	width := 1 << k.shift

	// The trie, with trie[state*width+class] = child or -1.
	type node struct{ fail int }
	nodes := []node{{}}
	trie := slices.Repeat([]int{-1}, width)
	outs := [][]int32{nil}
	for id, w := range words {
		s := 0
		for i := 0; i < len(w); i++ {
			c := int(k.class[w[i]])
			if trie[s*width+c] < 0 {
				nodes = append(nodes, node{})
				outs = append(outs, nil)
				trie = append(trie, slices.Repeat([]int{-1}, width)...)
				trie[s*width+c] = len(nodes) - 1
			}
			s = trie[s*width+c]
		}
		outs[s] = append(outs[s], int32(id))
	}

	// Breadth-first: fail links and the full transition function.
	k.delta = make([]uint16, len(nodes)*width)
	queue := make([]int, 0, len(nodes))
	for c := range width {
		if child := trie[c]; child > 0 {
			nodes[child].fail = 0
			k.delta[c] = uint16(child)
			queue = append(queue, child)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		outs[s] = append(outs[s], outs[nodes[s].fail]...)
		for c := range width {
			child := trie[s*width+c]
			if child < 0 || c == 0 {
				k.delta[s*width+c] = k.delta[nodes[s].fail*width+c]
				continue
			}
			nodes[child].fail = int(k.delta[nodes[s].fail*width+c])
			k.delta[s*width+c] = uint16(child)
			queue = append(queue, child)
		}
	}
	k.renumber(outs, width)
	return k
}

// renumber moves the states where a keyword ends to the end of the numbering.
func (k *keywordSet) renumber(outs [][]int32, width int) {
	n := len(outs)
	perm := make([]uint16, n)
	next := uint16(0)
	for s := range n {
		if len(outs[s]) == 0 {
			perm[s] = next
			next++
		}
	}
	k.firstOut = next
	for s := range n {
		if len(outs[s]) > 0 {
			perm[s] = next
			next++
		}
	}
	delta := make([]uint16, len(k.delta))
	k.out = make([][]int32, n)
	for s := range n {
		for c := range width {
			delta[int(perm[s])*width+c] = perm[k.delta[s*width+c]]
		}
		k.out[perm[s]] = outs[s]
	}
	k.delta = delta
}

// scan appends the occurrences of every keyword in b to hits and returns it.
func (k *keywordSet) scan(b []byte, hits []kwHit) []kwHit {
	if len(k.words) == 0 {
		return hits
	}
	delta, shift, first := k.delta, k.shift, k.firstOut
	class := &k.class
	s := uint16(0)
	for i, c := range b {
		s = delta[int(s)<<shift|int(class[c])]
		if s >= first {
			for _, id := range k.out[s] {
				hits = append(hits, kwHit{end: int32(i + 1), kw: id})
			}
		}
	}
	return hits
}

// keywordIndex assigns ids to keywords shared by several rules.
type keywordIndex struct {
	ids   map[string]int32
	words []string
}

func (x *keywordIndex) add(word string) int32 {
	word = strings.ToLower(word)
	if id, ok := x.ids[word]; ok {
		return id
	}
	if x.ids == nil {
		x.ids = make(map[string]int32)
	}
	id := int32(len(x.words))
	x.ids[word] = id
	x.words = append(x.words, word)
	return id
}
