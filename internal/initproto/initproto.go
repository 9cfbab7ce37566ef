// Package initproto is ganger-init's control protocol: JSON over HTTP on a
// unix socket (or TCP with a bearer token). ganger-init serves it; its ctl
// command and Ganger are clients. It imports the standard library only.
package initproto

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Process is one supervised process as the control interface shows it.
type Process struct {
	Name      string     `json:"name"`
	State     string     `json:"state"` // down, starting, running, backoff, stopping, exited, completed, fatal
	PID       int        `json:"pid,omitempty"`
	Restarts  int        `json:"restarts"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	Uptime    float64    `json:"uptime_seconds,omitempty"`
	Ready     bool       `json:"ready"`
	Healthy   bool       `json:"healthy"`
	Main      bool       `json:"main,omitempty"`
	Required  bool       `json:"required,omitempty"`
	LastExit  *Exit      `json:"last_exit,omitempty"`
}

// Exit is how a process last ended.
type Exit struct {
	Code   int       `json:"code"`             // the shell's code: 128+n when killed by signal n
	Signal string    `json:"signal,omitempty"` // the signal that killed it
	At     time.Time `json:"at"`
}

// Status is what GET /v1/processes answers.
type Status struct {
	Processes []Process `json:"processes"`
	Orphans   int64     `json:"orphans_reaped"`
	Stopping  bool      `json:"stopping"`
}

// Log is what GET /v1/processes/{name}/log answers.
type Log struct {
	Lines []string `json:"lines"`
}

// Reload is what POST /v1/reload answers.
type Reload struct {
	Added     []string `json:"added"`
	Removed   []string `json:"removed"`
	Restarted []string `json:"restarted"`
}

// Error is a refusal: {"error": "..."}.
type Error struct {
	Error string `json:"error"`
}

// Client talks to one ganger-init.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// NewUnix is a client of the socket at path.
func NewUnix(path string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{base: "http://ganger-init", hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// NewTCP is a client of the TCP address, with its token.
func NewTCP(addr, token string) *Client {
	return &Client{base: "http://" + addr, token: token, hc: &http.Client{Timeout: 30 * time.Second}}
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode >= 300 {
		var e Error
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s", e.Error)
		}
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Status lists the processes.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.do(ctx, "GET", "/v1/processes", nil, &s)
	return s, err
}

// Log returns up to n of a process's last lines (0: all kept).
func (c *Client) Log(ctx context.Context, name string, n int) ([]string, error) {
	var l Log
	err := c.do(ctx, "GET", fmt.Sprintf("/v1/processes/%s/log?lines=%d", url.PathEscape(name), n), nil, &l)
	return l.Lines, err
}

// Act starts, stops or restarts a process.
func (c *Client) Act(ctx context.Context, name, action string) (Process, error) {
	var p Process
	err := c.do(ctx, "POST", "/v1/processes/"+url.PathEscape(name)+"/"+action, nil, &p)
	return p, err
}

// Signal sends a signal (TERM, HUP, 15...) to a process's group.
func (c *Client) Signal(ctx context.Context, name, sig string) error {
	return c.do(ctx, "POST", "/v1/processes/"+url.PathEscape(name)+"/signal", map[string]string{"signal": sig}, nil)
}

// Reload reads the config again; only changed processes restart.
func (c *Client) Reload(ctx context.Context) (Reload, error) {
	var r Reload
	err := c.do(ctx, "POST", "/v1/reload", nil, &r)
	return r, err
}
