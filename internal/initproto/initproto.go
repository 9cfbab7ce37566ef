// Package initproto is ganger-init's control protocol: one JSON request
// line, one JSON reply line, on a unix socket (or TCP, the request
// carrying a token). ganger-init serves it; its ctl command and Ganger are
// clients. No HTTP: ganger-init stays small. It imports the standard
// library only.
package initproto

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
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

// Status is what the status op answers.
type Status struct {
	Processes []Process `json:"processes"`
	Orphans   int64     `json:"orphans_reaped"`
	Stopping  bool      `json:"stopping"`
}

// Log is what the log op answers.
type Log struct {
	Lines []string `json:"lines"`
}

// Reload is what the reload op answers.
type Reload struct {
	Added     []string `json:"added"`
	Removed   []string `json:"removed"`
	Restarted []string `json:"restarted"`
}

// Request is one call: a JSON object on one line. The connection answers
// one Reply line, then closes.
type Request struct {
	Token  string `json:"token,omitempty"` // TCP only
	Op     string `json:"op"`              // status, log, start, stop, restart, signal, reload
	Name   string `json:"name,omitempty"`
	Signal string `json:"signal,omitempty"`
	Lines  int    `json:"lines,omitempty"`
}

// Reply answers a Request: Error, or what the op gives.
type Reply struct {
	Error   string   `json:"error,omitempty"`
	Status  *Status  `json:"status,omitempty"`
	Process *Process `json:"process,omitempty"`
	Log     *Log     `json:"log,omitempty"`
	Reload  *Reload  `json:"reload,omitempty"`
}

// Client talks to one ganger-init.
type Client struct {
	network, addr, token string
}

// NewUnix is a client of the socket at path.
func NewUnix(path string) *Client { return &Client{network: "unix", addr: path} }

// NewTCP is a client of the TCP address, with its token.
func NewTCP(addr, token string) *Client { return &Client{network: "tcp", addr: addr, token: token} }

func (c *Client) do(ctx context.Context, req Request) (Reply, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, c.network, c.addr)
	if err != nil {
		return Reply{}, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	req.Token = c.token
	b, _ := json.Marshal(req)
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return Reply{}, err
	}
	line, err := bufio.NewReaderSize(conn, 64<<10).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return Reply{}, fmt.Errorf("no answer: %w", err)
	}
	var r Reply
	if err := json.Unmarshal(line, &r); err != nil {
		return Reply{}, fmt.Errorf("bad answer: %w", err)
	}
	if r.Error != "" {
		return r, errors.New(r.Error)
	}
	return r, nil
}

// Status lists the processes.
func (c *Client) Status(ctx context.Context) (Status, error) {
	r, err := c.do(ctx, Request{Op: "status"})
	if err != nil || r.Status == nil {
		return Status{}, orMissing(err)
	}
	return *r.Status, nil
}

// Log returns up to n of a process's last lines (0: all kept).
func (c *Client) Log(ctx context.Context, name string, n int) ([]string, error) {
	r, err := c.do(ctx, Request{Op: "log", Name: name, Lines: n})
	if err != nil || r.Log == nil {
		return nil, orMissing(err)
	}
	return r.Log.Lines, nil
}

// Act starts, stops or restarts a process.
func (c *Client) Act(ctx context.Context, name, action string) (Process, error) {
	r, err := c.do(ctx, Request{Op: action, Name: name})
	if err != nil || r.Process == nil {
		return Process{}, orMissing(err)
	}
	return *r.Process, nil
}

// Signal sends a signal (TERM, HUP, 15...) to a process's group.
func (c *Client) Signal(ctx context.Context, name, sig string) error {
	_, err := c.do(ctx, Request{Op: "signal", Name: name, Signal: sig})
	return err
}

// Reload reads the config again; only changed processes restart.
func (c *Client) Reload(ctx context.Context) (Reload, error) {
	r, err := c.do(ctx, Request{Op: "reload"})
	if err != nil || r.Reload == nil {
		return Reload{}, orMissing(err)
	}
	return *r.Reload, nil
}

func orMissing(err error) error {
	if err != nil {
		return err
	}
	return errors.New("an answer without its content")
}
