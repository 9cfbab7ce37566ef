package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/ganger-dev/ganger/internal/config"
)

func check(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file to validate")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: ganger check --config FILE")
		return errUsage
	}
	cfg, err := config.Load(*path)
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(stderr, e)
		}
		return fmt.Errorf("%s: %d error(s)", *path, len(errs))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (node %s, %d daemon(s), %d service(s))\n", *path, cfg.Node, len(cfg.Daemons), len(cfg.Services))
	return nil
}
