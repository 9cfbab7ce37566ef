package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/ganger-dev/ganger/internal/config"
)

// reload sends SIGHUP to the ganger whose pid file is given, after checking
// the config file if one is given: an invalid file is reported here, and
// the running ganger is left alone.
func reload(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pidFile := fs.String("pid-file", "", "pid file written by ganger serve --pid-file")
	path := fs.String("config", "", "config file to check before reloading")
	if err := fs.Parse(args); err != nil || *pidFile == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: ganger reload --pid-file FILE [--config FILE]")
		return errUsage
	}
	if *path != "" {
		_, err := config.Load(*path)
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintln(stderr, e)
			}
			return fmt.Errorf("%s: %d error(s); nothing reloaded", *path, len(errs))
		}
		if err != nil {
			return err
		}
	}
	b, err := os.ReadFile(*pidFile)
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("%s: not a process id: %q", *pidFile, b)
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("signal ganger (pid %d): %w", pid, err)
	}
	fmt.Fprintf(stdout, "reload requested (pid %d); see its log for the result\n", pid)
	return nil
}
