package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ganger-dev/ganger/internal/initd"
	"github.com/ganger-dev/ganger/internal/initproto"
)

// ctl is ganger-init's control client.
func ctl(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ganger-init ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", envOr("GANGER_INIT_SOCKET", initd.DefaultSocket), "the control socket")
	addr := fs.String("addr", "", "a TCP control address instead of the socket")
	token := fs.String("token", os.Getenv("GANGER_INIT_TOKEN"), "the TCP control token")
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	lines := fs.Int("n", 100, "log: how many lines")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c := initproto.NewUnix(*socket)
	if *addr != "" {
		c = initproto.NewTCP(*addr, *token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := fs.Args()
	fail := func(err error) int {
		fmt.Fprintln(stderr, "ganger-init ctl:", err)
		return 1
	}
	show := func(v any, text func()) int {
		if *asJSON {
			json.NewEncoder(stdout).Encode(v)
		} else {
			text()
		}
		return 0
	}
	switch {
	case len(a) == 1 && a[0] == "status":
		st, err := c.Status(ctx)
		if err != nil {
			return fail(err)
		}
		return show(st, func() {
			tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATE\tPID\tRESTARTS\tUPTIME\tLAST EXIT")
			for _, p := range st.Processes {
				pid, up, last := "-", "-", "-"
				if p.PID > 0 {
					pid, up = strconv.Itoa(p.PID), (time.Duration(p.Uptime) * time.Second).String()
				}
				if p.LastExit != nil {
					last = strconv.Itoa(p.LastExit.Code)
					if p.LastExit.Signal != "" {
						last += " (" + p.LastExit.Signal + ")"
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", p.Name, p.State, pid, p.Restarts, up, last)
			}
			tw.Flush()
			fmt.Fprintf(stdout, "orphans reaped: %d\n", st.Orphans)
		})
	case len(a) == 2 && a[0] == "log":
		l, err := c.Log(ctx, a[1], *lines)
		if err != nil {
			return fail(err)
		}
		return show(initproto.Log{Lines: l}, func() {
			for _, line := range l {
				fmt.Fprintln(stdout, line)
			}
		})
	case len(a) == 2 && (a[0] == "start" || a[0] == "stop" || a[0] == "restart"):
		p, err := c.Act(ctx, a[1], a[0])
		if err != nil {
			return fail(err)
		}
		return show(p, func() { fmt.Fprintf(stdout, "%s: %s\n", p.Name, p.State) })
	case len(a) == 3 && a[0] == "signal":
		if err := c.Signal(ctx, a[1], a[2]); err != nil {
			return fail(err)
		}
		return show(map[string]string{"signal": a[2]}, func() { fmt.Fprintf(stdout, "%s: sent %s\n", a[1], a[2]) })
	case len(a) == 1 && a[0] == "reload":
		r, err := c.Reload(ctx)
		if err != nil {
			return fail(err)
		}
		return show(r, func() {
			fmt.Fprintf(stdout, "added: %s\nremoved: %s\nrestarted: %s\n", list(r.Added), list(r.Removed), list(r.Restarted))
		})
	}
	fmt.Fprint(stderr, usageText)
	return 2
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ", ")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
