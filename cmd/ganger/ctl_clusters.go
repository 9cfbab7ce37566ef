package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/ganger-dev/ganger/internal/view"
)

// clusters runs `ctl clusters` and `ctl cluster NAME | scale NAME N |
// replace NAME ORDINAL | logs NAME ORDINAL PROCESS [LINES] | restart NAME
// ORDINAL PROCESS`.
func (c *ctlClient) clusters(cmd string, rest []string, w, stderr io.Writer, asJSON bool) error {
	usage := func() error {
		fmt.Fprintln(stderr, ctlUsage)
		return errUsage
	}
	if cmd == "clusters" {
		if len(rest) != 0 {
			return usage()
		}
		var list []view.Cluster
		body, err := c.get("/v1/clusters", &list)
		if err != nil {
			return err
		}
		if asJSON {
			w.Write(body)
			return nil
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLUSTER\tEPOCH\tLEADER\tREADY\tSIZE\tPENDING")
		for _, cl := range list {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\n", cl.Name, cl.Epoch, leaderOf(cl), cl.Ready, cl.Size, orDash(cl.Pending))
		}
		return tw.Flush()
	}
	if len(rest) == 0 {
		return usage()
	}
	ord := func(s string) (string, error) {
		if n, err := strconv.Atoi(s); err != nil || n < 0 {
			return "", fmt.Errorf("ordinal %q: want a number from 0", s)
		}
		return s, nil
	}
	var (
		body []byte
		err  error
	)
	switch verb := rest[0]; {
	case len(rest) == 1:
		var cl view.Cluster
		if body, err = c.get("/v1/clusters/"+verb, &cl); err != nil {
			return err
		}
		if asJSON {
			w.Write(body)
			return nil
		}
		return printCluster(w, cl)
	case verb == "scale" && len(rest) == 3:
		n, perr := strconv.Atoi(rest[2])
		if perr != nil || n < 0 {
			return fmt.Errorf("size %q: want a number from 0", rest[2])
		}
		req, _ := json.Marshal(map[string]int{"size": n})
		body, err = c.send("POST", "/v1/clusters/"+rest[1]+"/scale", req)
	case verb == "replace" && len(rest) == 3:
		o, oerr := ord(rest[2])
		if oerr != nil {
			return oerr
		}
		body, err = c.do("POST", "/v1/clusters/"+rest[1]+"/members/"+o+"/replace")
	case verb == "logs" && (len(rest) == 4 || len(rest) == 5):
		o, oerr := ord(rest[2])
		if oerr != nil {
			return oerr
		}
		path := "/v1/clusters/" + rest[1] + "/members/" + o + "/processes/" + rest[3] + "/log"
		if len(rest) == 5 {
			path += "?lines=" + rest[4]
		}
		var lg struct{ Lines []string }
		if body, err = c.get(path, &lg); err != nil {
			return err
		}
		if asJSON {
			w.Write(body)
			return nil
		}
		for _, l := range lg.Lines {
			fmt.Fprintln(w, l)
		}
		return nil
	case (verb == "restart" || verb == "start" || verb == "stop") && len(rest) == 4:
		o, oerr := ord(rest[2])
		if oerr != nil {
			return oerr
		}
		body, err = c.do("POST", "/v1/clusters/"+rest[1]+"/members/"+o+"/processes/"+rest[3]+"/"+verb)
	case verb == "signal" && len(rest) == 5:
		o, oerr := ord(rest[2])
		if oerr != nil {
			return oerr
		}
		req, _ := json.Marshal(map[string]string{"signal": rest[4]})
		body, err = c.send("POST", "/v1/clusters/"+rest[1]+"/members/"+o+"/processes/"+rest[3]+"/signal", req)
	default:
		return usage()
	}
	if err != nil {
		return err
	}
	if asJSON || rest[0] == "restart" || rest[0] == "start" || rest[0] == "stop" || rest[0] == "signal" {
		w.Write(body)
		return nil
	}
	var cl view.Cluster
	if err := json.Unmarshal(body, &cl); err != nil {
		w.Write(body)
		return nil
	}
	return printCluster(w, cl)
}

func leaderOf(cl view.Cluster) string {
	if cl.Leader == nil {
		return "-"
	}
	return strconv.Itoa(*cl.Leader)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printCluster prints a cluster and its members.
func printCluster(w io.Writer, cl view.Cluster) error {
	fmt.Fprintf(w, "cluster %s: epoch %d, leader %s, %d/%d ready, min_ready %d, %s rollout\n",
		cl.Name, cl.Epoch, leaderOf(cl), cl.Ready, cl.Size, cl.MinReady, cl.Rollout)
	for _, d := range cl.DependsOn {
		fmt.Fprintf(w, "depends on %s: %d/%d ready\n", d.Cluster, d.Ready, d.MinReady)
	}
	if cl.Pending != "" {
		fmt.Fprintf(w, "pending: %s\n", cl.Pending)
	}
	if cl.Problem != "" {
		fmt.Fprintf(w, "problem: %s\n", cl.Problem)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORDINAL\tINCARNATION\tSTATE\tDAEMON\tIP\tREPORT\tEPOCH\tPROCESSES")
	for _, m := range cl.Members {
		state := m.State
		if m.Ready {
			state += ",ready"
		}
		if m.Leader {
			state += ",leader"
		}
		var procs []string
		for _, p := range m.Processes {
			procs = append(procs, p.Name+"="+p.State)
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%d\t%s\n", m.Ordinal, m.Incarnation, state, orDash(m.Daemon),
			orDash(m.IP), orDash(m.Report), m.Acked, orDash(strings.Join(procs, " ")))
	}
	return tw.Flush()
}
