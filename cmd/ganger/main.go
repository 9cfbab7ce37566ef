// Command ganger runs network services in Docker containers on demand: every
// client connection gets a fresh container, proxied, then destroyed.
//
// Usage:
//
//	ganger serve --config FILE   run the daemon
//	ganger check --config FILE   validate a config file, start nothing
//	ganger reload --pid-file F   make a running ganger reload its config (SIGHUP)
//	ganger agent --etcd URL ...  register this Docker host in etcd for Ganger to find
//	ganger version               print the version, commit, build date and Go version
//	ganger completion bash|zsh   print a shell completion script
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// errUsage marks a command-line mistake: usage is printed, exit code 2.
var errUsage = errors.New("usage")

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "ganger:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return errUsage
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "check":
		return check(args[1:], stdout, stderr)
	case "reload":
		return reload(args[1:], stdout, stderr)
	case "ctl":
		return ctl(args[1:], stdout, stderr)
	case "agent":
		return agent(args[1:], stderr)
	case "completion":
		return completion(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		printVersion(stdout)
		return nil
	case "help", "-h", "--help", "-help":
		usage(stdout)
		return nil
	default:
		fmt.Fprintf(stderr, "ganger: unknown command %q\n", args[0])
		usage(stderr)
		return errUsage
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: ganger <command> [flags]

Commands:
  serve --config FILE   run Ganger: listen for every service, a fresh container per connection
  check --config FILE   validate FILE; print every error with its key and line
  reload --pid-file F [--config FILE]
                        make a running ganger (serve --pid-file F) reload its config;
                        with --config, check FILE first and reload only if it is valid
  ctl [--api URL] [--token T] [--json] status|sessions|kill ID|drain D|undrain D|reload
                        see and steer a running ganger through its API
  agent --etcd URL --name NAME --advertise IP [flags]
                        run on a Docker host: register it in etcd for Ganger nodes to find;
                        SIGTERM drains it, then deregisters (ganger agent -h for the flags)
  version               print the version, commit, build date and Go version
  completion bash|zsh   print a shell completion script: source <(ganger completion bash)
`)
}
