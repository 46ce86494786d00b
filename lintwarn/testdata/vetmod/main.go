package main

import (
	"fmt"
	"sync"
)

type counter struct {
	mu sync.Mutex
	n  int
}

func show(c counter) int { return c.n }

func main() {
	name := "sluice"
	fmt.Printf("%d\n", name)
	var c counter
	fmt.Println(show(c))
	x := 1
	x = x
}
