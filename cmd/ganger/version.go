package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Set at build time (make build, make dist):
//
//	-ldflags "-X main.version=V -X main.commit=C -X main.buildDate=D"
//
// Unset, the commit and its time come from what the go command stamps in
// every binary built in a Git checkout (runtime/debug.ReadBuildInfo).
var (
	version   = "dev"
	commit    = ""
	buildDate = ""
)

// buildInfo is what `ganger version` says.
type buildInfo struct {
	Version  string
	Commit   string // "": unknown
	Modified bool   // built from a checkout with uncommitted changes
	Date     string // "": unknown
	DateIsVC bool   // Date is the commit's time, not the build's
	Go       string
	Platform string
}

// readBuildInfo combines the -X values with the binary's own build info.
func readBuildInfo(bi *debug.BuildInfo, ok bool) buildInfo {
	b := buildInfo{Version: version, Commit: commit, Date: buildDate, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if !ok {
		return b
	}
	if b.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		b.Version = bi.Main.Version // go install …/cmd/ganger@v1.2.3
	}
	vcs := map[string]string{}
	for _, s := range bi.Settings {
		vcs[s.Key] = s.Value
	}
	if b.Commit == "" {
		b.Commit = vcs["vcs.revision"]
		b.Modified = vcs["vcs.modified"] == "true"
	}
	if b.Date == "" && vcs["vcs.time"] != "" {
		b.Date, b.DateIsVC = vcs["vcs.time"], true
	}
	if bi.GoVersion != "" {
		b.Go = bi.GoVersion
	}
	return b
}

func (b buildInfo) write(w io.Writer) {
	commit, date := b.Commit, b.Date
	if commit == "" {
		commit = "unknown"
	} else if b.Modified {
		commit += " (with uncommitted changes)"
	}
	switch {
	case date == "":
		date = "unknown"
	case b.DateIsVC:
		date = "unknown; commit of " + date
	}
	fmt.Fprintf(w, "ganger %s\ncommit: %s\nbuilt:  %s\ngo:     %s %s\n", b.Version, commit, date, b.Go, b.Platform)
}

// printVersion is `ganger version`.
func printVersion(w io.Writer) {
	readBuildInfo(debug.ReadBuildInfo()).write(w)
}
