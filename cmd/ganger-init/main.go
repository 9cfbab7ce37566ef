// Command ganger-init is a small static PID 1 for containers: it runs one
// command the way tini does (ganger-init -- CMD), a runit service
// directory (--dir), or several processes from a YAML file (--config),
// reaps every zombie, stops by a protocol, and exits only when nothing is
// left.
package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ganger-dev/ganger/internal/initd"
)

var version = "dev"

const usageText = `usage:
  ganger-init [-g] [-s] [-e CODE]... [--grace D] -- CMD [ARGS...]
                                   run one command (tini's job)
  ganger-init --dir DIR [--grace D]  run runit's service directory
  ganger-init --config FILE          run the processes of a YAML file
  ganger-init --config-env NAME      the same, the YAML in an environment variable
  ganger-init check --config FILE    validate a config file
  ganger-init ctl [--socket PATH | --addr HOST:PORT --token T] status|log NAME|start NAME|stop NAME|restart NAME|signal NAME SIG|reload
  ganger-init version
flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// codes is the repeatable -e flag.
type codes map[int]bool

func (c codes) String() string { return fmt.Sprint(map[int]bool(c)) }
func (c codes) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 255 {
		return fmt.Errorf("want an exit code 0-255, got %q", s)
	}
	c[n] = true
	return nil
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "version", "--version", "-version":
			fmt.Fprintf(stdout, "ganger-init %s\n", version)
			return 0
		case "check":
			return check(args[1:], stdout, stderr)
		case "ctl":
			return ctl(args[1:], stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("ganger-init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usageText); fs.PrintDefaults() }
	group := fs.Bool("g", false, "send the signals to the child's process group (-- mode)")
	fs.Bool("s", false, "be a subreaper when not PID 1 (always done; kept for tini's users)")
	remap := codes{}
	fs.Var(remap, "e", "turn this exit code of the child into 0 (repeatable; -- mode)")
	grace := fs.Duration("grace", 5*time.Second, "after the main processes end, how long the others get between TERM and KILL (-- and --dir modes)")
	dir := fs.String("dir", "", "run the runit services of this directory")
	cfgPath := fs.String("config", "", "run the processes of this YAML file")
	cfgEnv := fs.String("config-env", "", "run the processes of the YAML in this environment variable")
	logFormat := fs.String("log-format", "text", "text ([name] prefixed lines) or json (one object per line)")
	socket := fs.String("control", "", "the control socket (default /run/ganger-init.sock in --dir and --config modes; \"none\": no control interface)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := logger(*logFormat, stderr)
	switch {
	case *dir != "" || *cfgPath != "" || *cfgEnv != "":
		if fs.NArg() > 0 {
			fmt.Fprintln(stderr, "ganger-init: a command after --dir or --config: give one or the other")
			return 2
		}
		src := initd.Source{Dir: *dir, File: *cfgPath, Env: *cfgEnv, Grace: *grace}
		return initd.Supervise(initd.Options{Source: src, LogFormat: *logFormat, Control: *socket, Log: log, Stdout: stdout, Stderr: stderr})
	case fs.NArg() == 0:
		fs.Usage()
		return 2
	}
	return initd.RunChild(initd.ChildOptions{Argv: fs.Args(), Group: *group, Remap: remap, Grace: *grace, Log: log})
}

// logger is ganger-init's own log, on stderr.
func logger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil)).With("source", "ganger-init")
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			if a.Key == slog.MessageKey {
				a.Value = slog.StringValue("ganger-init: " + a.Value.String())
			}
			return a
		},
	}))
}

func check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ganger-init check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "the YAML file to check")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "ganger-init check: --config FILE is required")
		return 2
	}
	b, err := os.ReadFile(*path)
	if err != nil {
		fmt.Fprintln(stderr, "ganger-init check:", err)
		return 1
	}
	cfg, err := initd.ParseConfig(*path, b)
	if err != nil {
		fmt.Fprintln(stderr, strings.TrimRight(err.Error(), "\n"))
		return 1
	}
	fmt.Fprintf(stdout, "%s: %d processes, valid\n", *path, len(cfg.Processes))
	return 0
}
