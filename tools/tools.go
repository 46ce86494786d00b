//go:build tools

// Package tools pins the build tools (buf, protoc-gen-go, k6, staticcheck, and the
// nats-server of the fleet's images) outside the main module.
package tools

import (
	_ "github.com/bufbuild/buf/cmd/buf"
	_ "github.com/nats-io/nats-server/v2"
	_ "go.k6.io/k6"
	_ "google.golang.org/protobuf/cmd/protoc-gen-go"
	_ "honnef.co/go/tools/cmd/staticcheck"
)
