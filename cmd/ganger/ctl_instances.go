package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ganger-dev/ganger/internal/view"
)

// instances runs `ctl instances [all]` and `ctl instance VERB ARG [TTL]`.
func (c *ctlClient) instances(cmd string, rest []string, w, stderr io.Writer, asJSON bool) error {
	usage := func() error {
		fmt.Fprintln(stderr, ctlUsage)
		return errUsage
	}
	if cmd == "instances" {
		if len(rest) > 1 || (len(rest) == 1 && rest[0] != "all") {
			return usage()
		}
		path := "/v1/instances"
		if len(rest) == 1 {
			path += "?state=all"
		}
		var list []view.Instance
		body, err := c.get(path, &list)
		if err != nil {
			return err
		}
		if asJSON {
			w.Write(body)
			return nil
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSERVICE\tSTATE\tOWNER\tADDRESS\tEXPIRES")
		for _, in := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", in.ID, in.Service, in.State, in.Owner, address(in), expires(in))
		}
		return tw.Flush()
	}
	if len(rest) < 2 {
		return usage()
	}
	if i := slices.IndexFunc(rest, func(a string) bool { return a == "--ttl" || a == "-ttl" }); i >= 2 && i+1 < len(rest) {
		rest = append(slices.Clone(rest[:i]), rest[i+1:]...) // --ttl D is the TTL argument
	} else if i := slices.IndexFunc(rest, func(a string) bool { return strings.HasPrefix(a, "--ttl=") }); i >= 2 {
		rest = append(slices.Clone(rest[:i]), append([]string{strings.TrimPrefix(rest[i], "--ttl=")}, rest[i+1:]...)...)
	}
	verb, arg := rest[0], rest[1]
	var (
		body []byte
		err  error
	)
	switch {
	case verb == "create" && len(rest) <= 3:
		var req []byte
		if len(rest) == 3 {
			if _, perr := time.ParseDuration(rest[2]); perr != nil {
				return fmt.Errorf("ttl %q: want a duration such as 30m", rest[2])
			}
			req, _ = json.Marshal(map[string]string{"ttl": rest[2]})
		}
		body, err = c.send("POST", "/v1/services/"+arg+"/instances", req)
	case verb == "get" && len(rest) == 2:
		body, err = c.do("GET", "/v1/instances/"+arg)
	case verb == "extend" && len(rest) == 2:
		body, err = c.do("POST", "/v1/instances/"+arg+"/extend")
	case verb == "restart" && len(rest) == 2:
		body, err = c.do("POST", "/v1/instances/"+arg+"/restart")
	case verb == "delete" && len(rest) == 2:
		body, err = c.do("DELETE", "/v1/instances/"+arg)
	default:
		return usage()
	}
	if err != nil {
		return err
	}
	if asJSON {
		w.Write(body)
		return nil
	}
	var in view.Instance
	if err := json.Unmarshal(body, &in); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("id", in.ID)
	row("service", in.Service)
	row("state", in.State)
	row("address", address(in))
	for _, k := range slices.Sorted(maps.Keys(in.Secrets)) {
		row("secret "+k, in.Secrets[k])
	}
	row("connect", in.Connect)
	row("expires", expires(in))
	if in.State == "running" || in.State == "starting" {
		row("extends left", fmt.Sprint(in.ExtendsLeft))
	}
	row("reason", in.Reason)
	row("owner token", in.OwnerToken)
	return tw.Flush()
}

// address is host:port of each published port.
func address(in view.Instance) string {
	var out []string
	for _, p := range slices.Sorted(maps.Keys(in.Ports)) {
		out = append(out, fmt.Sprintf("%s:%d (%s)", in.Host, in.Ports[p], p))
	}
	return strings.Join(out, " ")
}

func expires(in view.Instance) string {
	if in.EndedAt != nil {
		return "ended " + in.EndedAt.Local().Format(time.DateTime)
	}
	left := time.Until(in.ExpiresAt).Round(time.Second)
	return fmt.Sprintf("%s (in %s)", in.ExpiresAt.Local().Format(time.DateTime), left)
}
