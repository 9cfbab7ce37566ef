//go:build !linux

package ganger

// Ganger runs on Linux only: it proxies with splice, reads TCP_INFO and
// peeks sockets with Linux flags, and manages its open-file limit. On any
// other system the build stops here, with this name in the error.
var _ = Ganger_runs_on_Linux_only
