// Package unregister carries deploy's way of taking a module back out of its registries to
// deploytest, and nowhere else: programs register their modules once, at init.
package unregister

// Router, Provider and Judge remove the module registered under a name; deploy sets them.
var Router, Provider, Judge func(name string)
