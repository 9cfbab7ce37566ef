package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ganger-dev/ganger/internal/view"
)

const ctlUsage = `usage: ganger ctl [--api URL] [--token TOKEN] [--json] COMMAND
commands:
  status          services and daemons
  sessions        live and recent sessions
  hosts           Docker hosts: static and discovered, their state and load
  kill ID         end a session (its container is removed)
  drain DAEMON    no new containers on DAEMON; live ones finish
  undrain DAEMON  use DAEMON again
  reload          re-read the config file
  instances [all]              live instances (all: ended ones too)
  instance create SVC [--ttl D] make an instance (D such as 30m); prints
                               its address, secrets and owner token
  instance get|extend|restart|delete ID
  clusters                     clusters: epoch, leader, readiness
  cluster NAME                 a cluster's members and their processes
  cluster scale NAME N         change its size (one member at a time)
  cluster replace NAME ORD     replace a member (same ordinal, new incarnation)
  cluster logs NAME ORD PROC [LINES]   a member's process output
  cluster restart|start|stop NAME ORD PROC
  cluster signal NAME ORD PROC SIG
Reads (status, sessions) need api.read_token or api.token unless the API
has public_read; kill, drain, undrain and reload need api.token. Instances
take api.token, an api.clients token, or (get, extend, delete) the
instance's owner token; create needs none on a public service. Clusters
read like status; scale, replace and a member's processes (logs too) need
api.token. The token
may also come from GANGER_TOKEN.`

// ctl talks to a running ganger's API.
func ctl(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("api", "http://127.0.0.1:5480", "the API's base URL")
	token := fs.String("token", os.Getenv("GANGER_TOKEN"), "the API's token (api.token; api.read_token for reads only)")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for an answer (a reload waits at least 11m: it may pull images)")
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 {
		fmt.Fprintln(stderr, ctlUsage)
		return errUsage
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	if cmd == "reload" { // the server bounds a reload by its own 10-minute limit
		*timeout = max(*timeout, 11*time.Minute)
	}
	c := &ctlClient{base: strings.TrimRight(*base, "/"), token: *token, http: &http.Client{Timeout: *timeout}}
	if cmd == "instances" || cmd == "instance" {
		return c.instances(cmd, rest, stdout, stderr, *asJSON)
	}
	if cmd == "clusters" || cmd == "cluster" {
		return c.clusters(cmd, rest, stdout, stderr, *asJSON)
	}
	needArg := map[string]bool{"kill": true, "drain": true, "undrain": true}
	if needArg[cmd] != (len(rest) == 1) || len(rest) > 1 {
		fmt.Fprintln(stderr, ctlUsage)
		return errUsage
	}
	var (
		body []byte
		err  error
	)
	switch cmd {
	case "status":
		return c.status(stdout, *asJSON)
	case "sessions":
		return c.sessions(stdout, *asJSON)
	case "hosts":
		return c.hosts(stdout, *asJSON)
	case "kill":
		body, err = c.do("DELETE", "/v1/sessions/"+rest[0])
	case "drain", "undrain":
		body, err = c.do("POST", "/v1/daemons/"+rest[0]+"/"+cmd)
	case "reload":
		body, err = c.do("POST", "/v1/reload")
	default:
		fmt.Fprintf(stderr, "ganger ctl: unknown command %q\n%s\n", cmd, ctlUsage)
		return errUsage
	}
	if err != nil {
		return err
	}
	if *asJSON {
		stdout.Write(body)
	} else {
		fmt.Fprintf(stdout, "%s: ok\n", strings.Join(fs.Args(), " "))
	}
	return nil
}

type ctlClient struct {
	base, token string
	http        *http.Client
}

// do makes a call and returns its body; an error status becomes an error
// carrying the API's reason.
func (c *ctlClient) do(method, path string) ([]byte, error) { return c.send(method, path, nil) }

// send is do with a JSON body (nil: none).
func (c *ctlClient) send(method, path string, body []byte) ([]byte, error) {
	var in io.Reader
	if body != nil {
		in = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, in)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		json.Unmarshal(out, &e)
		err := fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error)
		if resp.StatusCode == http.StatusUnauthorized && c.token == "" {
			err = fmt.Errorf("%w\nthis API needs a token: give it with --token or GANGER_TOKEN", err)
		}
		return nil, err
	}
	return out, nil
}

func (c *ctlClient) get(path string, v any) ([]byte, error) {
	body, err := c.do("GET", path)
	if err != nil {
		return nil, err
	}
	return body, json.Unmarshal(body, v)
}

func (c *ctlClient) status(w io.Writer, asJSON bool) error {
	var svcs []view.Service
	var daemons []view.Daemon
	sb, err := c.get("/v1/services", &svcs)
	if err != nil {
		return err
	}
	db, err := c.get("/v1/daemons", &daemons)
	if err != nil {
		return err
	}
	if asJSON {
		fmt.Fprintf(w, "{\"services\": %s, \"daemons\": %s}\n", sb, db)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tLISTEN\tMODE\tLIVE\tQUEUED\tPOOL\tPOOL HITS\tSERVED\tFAILURES\tTTFB P50\tTTFB P99")
	for _, s := range svcs {
		pool, hits := "-", "-"
		if p := s.Pool; p != nil {
			pool, hits = fmt.Sprintf("%d/%d", p.Ready, p.Target), fmt.Sprintf("%d/%d", p.Hits, p.Hits+p.Misses)
			if p.Adaptive {
				pool += fmt.Sprintf(" (adaptive, %.2f/s)", p.ArrivalRate)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%d\t%s\t%s\t%s\n", s.Name, s.Listen, s.Mode, s.Live, s.Queued,
			pool, hits, s.Served, failures(s.Failures), millis(s.TTFBp50), millis(s.TTFBp99))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "DAEMON\tSTATE\tAPI\tCONTAINERS\tMAX\tDRAINED")
	for _, d := range daemons {
		state := "down"
		if d.Up {
			state = "up"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%v\n", d.Name, state, d.APIVersion, d.Containers, d.Max, d.Drained)
	}
	return tw.Flush()
}

func (c *ctlClient) sessions(w io.Writer, asJSON bool) error {
	var s view.Sessions
	body, err := c.get("/v1/sessions", &s)
	if err != nil {
		return err
	}
	if asJSON {
		w.Write(body)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tSTATE\tSERVICE\tCLIENT\tDAEMON\tCONTAINER\tDURATION\tIN\tOUT\tOUTCOME")
	for _, list := range [][]view.Session{s.Live, s.Recent} {
		for _, i := range list {
			state := "ended"
			if i.Live {
				state = "live"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", i.ID, state, i.Service, i.Client, i.Daemon, i.Container,
				time.Duration(i.Duration*float64(time.Second)).Round(time.Millisecond), i.BytesIn, i.BytesOut, i.Outcome)
		}
	}
	return tw.Flush()
}

func (c *ctlClient) hosts(w io.Writer, asJSON bool) error {
	var hs []view.Host
	body, err := c.get("/v1/hosts", &hs)
	if err != nil {
		return err
	}
	if asJSON {
		w.Write(body)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST	SOURCE	STATE	CONTAINERS	OTHER NODES	DOCKER	LAST SEEN")
	for _, h := range hs {
		seen := "-"
		if h.LastSeen != nil {
			seen = time.Since(*h.LastSeen).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d\t%s\t%s\n", h.Name, h.Source, h.State, h.Containers, h.Capacity, h.Others, h.Docker, seen)
	}
	return tw.Flush()
}

func failures(m map[string]int64) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s:%d", k, v))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}

func millis(s float64) string {
	if s == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fms", s*1000)
}
