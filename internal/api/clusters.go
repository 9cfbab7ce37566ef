package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/ganger-dev/ganger/internal/initproto"
	"github.com/ganger-dev/ganger/internal/view"
)

// Clusters is what the API reads and steers clusters through. Errors a
// client should see are *ClusterError.
type Clusters interface {
	Statuses() []view.Cluster
	Status(name string) (view.Cluster, error)
	Scale(name string, size int) error
	Replace(name string, ordinal int) error
	// View and Report are the members' side: each with the member's own
	// token.
	View(ctx context.Context, name string, ordinal int, token string, after int64, released bool) (initproto.View, error)
	Report(name string, ordinal int, token string, r initproto.Report) error
	// Control reaches a member's ganger-init.
	Control(name string, ordinal int) (*initproto.Client, error)
}

// ClusterError is a refusal with its status and reason.
type ClusterError struct {
	Status int
	Reason string
}

func (e *ClusterError) Error() string { return e.Reason }

// maxBody bounds a JSON request body.
const maxBody = 1 << 20

func clusterFailure(err error) error {
	var ce *ClusterError
	if errors.As(err, &ce) {
		return &apiError{code: ce.Status, msg: ce.Reason}
	}
	return err
}

func (a *API) clusters(w http.ResponseWriter, r *http.Request) error {
	out := []view.Cluster{}
	if a.Clusters != nil {
		out = append(out, a.Clusters.Statuses()...)
	}
	writeJSON(w, 200, out)
	return nil
}

func (a *API) clusterNamed(r *http.Request) (view.Cluster, error) {
	if a.Clusters == nil {
		return view.Cluster{}, &apiError{code: 404, msg: "no cluster service is configured"}
	}
	c, err := a.Clusters.Status(r.PathValue("name"))
	return c, clusterFailure(err)
}

func (a *API) cluster(w http.ResponseWriter, r *http.Request) error {
	c, err := a.clusterNamed(r)
	if err != nil {
		return err
	}
	writeJSON(w, 200, c)
	return nil
}

// decodeBody reads a JSON object of at most maxBody into v.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &apiError{code: 400, msg: "bad JSON body: " + err.Error()}
	}
	return nil
}

func (a *API) scaleCluster(w http.ResponseWriter, r *http.Request) error {
	if _, err := a.clusterNamed(r); err != nil {
		return err
	}
	var body struct {
		Size *int `json:"size"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if body.Size == nil || *body.Size < 0 || *body.Size > 1000 {
		return &apiError{code: 400, msg: `want {"size": N} with N from 0 to 1000`}
	}
	name := r.PathValue("name")
	if err := a.Clusters.Scale(name, *body.Size); err != nil {
		return clusterFailure(err)
	}
	a.Log.Info("api: cluster scaled", "cluster", name, "size", *body.Size)
	c, _ := a.Clusters.Status(name)
	writeJSON(w, 200, c)
	return nil
}

// ordinal is the {ordinal} of the path.
func ordinal(r *http.Request) (int, error) {
	o, err := strconv.Atoi(r.PathValue("ordinal"))
	if err != nil || o < 0 {
		return 0, &apiError{code: 400, msg: "the ordinal must be a number from 0"}
	}
	return o, nil
}

func (a *API) replaceMember(w http.ResponseWriter, r *http.Request) error {
	if _, err := a.clusterNamed(r); err != nil {
		return err
	}
	o, err := ordinal(r)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if err := a.Clusters.Replace(name, o); err != nil {
		return clusterFailure(err)
	}
	a.Log.Info("api: cluster member replaced", "cluster", name, "ordinal", o)
	c, _ := a.Clusters.Status(name)
	writeJSON(w, 202, c)
	return nil
}

// memberControl is the member's ganger-init, for an operator's call.
func (a *API) memberControl(r *http.Request) (*initproto.Client, error) {
	if _, err := a.clusterNamed(r); err != nil {
		return nil, err
	}
	o, err := ordinal(r)
	if err != nil {
		return nil, err
	}
	c, err := a.Clusters.Control(r.PathValue("name"), o)
	return c, clusterFailure(err)
}

// initFailure maps a ganger-init answer to the API's: its refusals (no
// such process) are the client's, a member that does not answer is 502.
func initFailure(err error) error {
	msg := err.Error()
	if strings.HasPrefix(msg, "no process") || strings.Contains(msg, "unknown process") || strings.Contains(msg, "no such process") {
		return &apiError{code: 404, msg: msg}
	}
	return &apiError{code: 502, msg: "the member's ganger-init: " + msg}
}

func (a *API) memberProcesses(w http.ResponseWriter, r *http.Request) error {
	c, err := a.memberControl(r)
	if err != nil {
		return err
	}
	st, err := c.Status(r.Context())
	if err != nil {
		return initFailure(err)
	}
	writeJSON(w, 200, st)
	return nil
}

func (a *API) memberLog(w http.ResponseWriter, r *http.Request) error {
	c, err := a.memberControl(r)
	if err != nil {
		return err
	}
	n := 100
	if s := r.URL.Query().Get("lines"); s != "" {
		if n, err = strconv.Atoi(s); err != nil || n < 0 {
			return &apiError{code: 400, msg: "lines must be a number from 0 (0: all kept)"}
		}
	}
	lines, err := c.Log(r.Context(), r.PathValue("process"), n)
	if err != nil {
		return initFailure(err)
	}
	writeJSON(w, 200, map[string]any{"lines": lines})
	return nil
}

func (a *API) memberAct(w http.ResponseWriter, r *http.Request) error {
	c, err := a.memberControl(r)
	if err != nil {
		return err
	}
	proc, action := r.PathValue("process"), r.PathValue("action")
	switch action {
	case "start", "stop", "restart":
		_, err = c.Act(r.Context(), proc, action)
	case "signal":
		var body struct {
			Signal string `json:"signal"`
		}
		if err := decodeBody(r, &body); err != nil {
			return err
		}
		if body.Signal == "" {
			return &apiError{code: 400, msg: `want {"signal": "HUP"}`}
		}
		err = c.Signal(r.Context(), proc, body.Signal)
	default:
		return &apiError{code: 404, msg: "no action " + action + ": start, stop, restart or signal"}
	}
	if err != nil {
		return initFailure(err)
	}
	a.Log.Info("api: member process", "cluster", r.PathValue("name"), "ordinal", r.PathValue("ordinal"), "process", proc, "action", action)
	st, err := c.Status(r.Context())
	if err != nil {
		return initFailure(err)
	}
	writeJSON(w, 200, st)
	return nil
}

// memberToken is the bearer token a member sends.
func memberToken(r *http.Request) string {
	t, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return t
}

// memberFailure maps a member call's error.
func memberFailure(w http.ResponseWriter, err error) error {
	var ce *ClusterError
	if errors.As(err, &ce) {
		if ce.Status == 401 {
			w.Header().Add("WWW-Authenticate", `Bearer realm="ganger-cluster"`)
		}
		return &apiError{code: ce.Status, msg: ce.Reason}
	}
	return err
}

func (a *API) memberView(w http.ResponseWriter, r *http.Request) error {
	if a.Clusters == nil {
		return &apiError{code: 404, msg: "no cluster service is configured"}
	}
	o, err := ordinal(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var after int64
	if s := q.Get("after"); s != "" {
		if after, err = strconv.ParseInt(s, 10, 64); err != nil || after < 0 {
			return &apiError{code: 400, msg: "after must be an epoch (a number from 0)"}
		}
	}
	released := q.Get("released") == "1" || q.Get("released") == "true"
	v, err := a.Clusters.View(r.Context(), r.PathValue("name"), o, memberToken(r), after, released)
	if err != nil {
		return memberFailure(w, err)
	}
	writeJSON(w, 200, v)
	return nil
}

func (a *API) memberReport(w http.ResponseWriter, r *http.Request) error {
	if a.Clusters == nil {
		return &apiError{code: 404, msg: "no cluster service is configured"}
	}
	o, err := ordinal(r)
	if err != nil {
		return err
	}
	var rep initproto.Report
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	if err := dec.Decode(&rep); err != nil {
		return &apiError{code: 400, msg: "bad JSON body: " + err.Error()}
	}
	if err := a.Clusters.Report(r.PathValue("name"), o, memberToken(r), rep); err != nil {
		return memberFailure(w, err)
	}
	writeJSON(w, 200, map[string]string{"status": "ok"})
	return nil
}
