//go:build tools

// Package tools pins the build tools (buf, protoc-gen-go, k6, staticcheck) outside the main
// module.
package tools

import (
	_ "github.com/bufbuild/buf/cmd/buf"
	_ "go.k6.io/k6"
	_ "google.golang.org/protobuf/cmd/protoc-gen-go"
	_ "honnef.co/go/tools/cmd/staticcheck"
)
