package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/ganger-dev/ganger/internal/config"
)

func check(args []string, stdout, stderr io.Writer) error {
	path, err := configFlag("check", args, stderr)
	if err != nil {
		return err
	}
	cfg, err := config.Load(path)
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(stderr, e)
		}
		return fmt.Errorf("%s: %d error(s)", path, len(errs))
	}
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintln(stderr, "warning:", w)
	}
	fmt.Fprintf(stdout, "%s: ok (node %s, %d daemon(s), %d service(s), %d warning(s))\n", path, cfg.Node, len(cfg.Daemons), len(cfg.Services), len(cfg.Warnings()))
	return nil
}

// configFlag parses the one flag serve and check take, --config FILE.
func configFlag(cmd string, args []string, stderr io.Writer) (string, error) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file")
	if err := fs.Parse(args); err != nil {
		return "", errUsage
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "usage: ganger %s --config FILE\n", cmd)
		return "", errUsage
	}
	return *path, nil
}
