package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ganger-dev/ganger/internal/view"
)

// Instances is what the API makes and manages instances through. Its
// errors that a client should see are *InstanceError.
type Instances interface {
	// Public reports whether the service exists and lets anyone create.
	Public(service string) (known, public bool)
	// Create makes an instance for owner; existing says an owner at its
	// quota got its newest back (no token then).
	Create(ctx context.Context, service, owner string, ttl time.Duration) (inst view.Instance, existing bool, err error)
	// Get returns the instance with its secrets and its owner, and
	// whether token is its owner token (one read of the store for both).
	Get(ctx context.Context, id, token string) (inst view.Instance, owned bool, err error)
	// List returns instances, newest first: owner "" for every owner, all
	// for ended ones too.
	List(ctx context.Context, owner string, all bool) ([]view.Instance, error)
	Extend(ctx context.Context, id string) (view.Instance, error)
	// Restart gives it a fresh container: same id, ports and secrets.
	Restart(ctx context.Context, id string) (view.Instance, error)
	Delete(ctx context.Context, id string) (view.Instance, error)
}

// InstanceError is a refusal with its status, reason and, for 429 and
// 503, when to try again.
type InstanceError struct {
	Status     int
	Reason     string
	RetryAfter time.Duration
}

func (e *InstanceError) Error() string { return e.Reason }

// Client is a named API client: its token creates and manages its own
// instances, and it is their owner.
type Client struct{ Name, Token string }

// Owner names: who owns an instance.
const (
	ownerAdmin  = "admin"
	ownerClient = "client:"
	ownerAddr   = "ip:"
)

// caller is who makes a request.
type caller struct {
	admin  bool
	reader bool   // the read-only token
	client string // a named client
	token  string // the credential sent, whatever it is
	addr   netip.Addr
}

func (c caller) owner() string {
	switch {
	case c.admin:
		return ownerAdmin
	case c.client != "":
		return ownerClient + c.client
	}
	return ownerAddr + c.addr.String()
}

func (a *API) whoIs(r *http.Request) caller {
	var c caller
	c.token, _ = credential(r)
	switch {
	case c.token == "":
	case a.Token != "" && equal(c.token, a.Token):
		c.admin = true
	case a.ReadToken != "" && equal(c.token, a.ReadToken):
		c.reader = true
	default:
		for _, cl := range a.Clients {
			if equal(c.token, cl.Token) {
				c.client = cl.Name
			}
		}
	}
	c.addr = a.clientAddr(r)
	return c
}

// clientAddr is the request's client address: its peer's, or, when the
// peer is a trusted proxy, the right-most address of X-Forwarded-For that
// is not one (what a proxy chain appends cannot be forged by the client).
func (a *API) clientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	addr := ap.Addr().Unmap()
	if !a.trusted(addr) {
		return addr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return addr // a garbled chain: believe only the peer
		}
		h = h.Unmap()
		if !a.trusted(h) {
			return h
		}
		addr = h
	}
	return addr
}

func (a *API) trusted(addr netip.Addr) bool {
	for _, p := range a.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// createInstance: POST /v1/services/{svc}/instances, body {"ttl": "30m"}
// (optional).
func (a *API) createInstance(w http.ResponseWriter, r *http.Request) error {
	if a.Instances == nil {
		return &apiError{code: 404, msg: "no instance service is configured"}
	}
	svc := r.PathValue("svc")
	known, public := a.Instances.Public(svc)
	if !known {
		return &apiError{code: 404, msg: "no instance service " + svc}
	}
	c := a.whoIs(r)
	switch {
	case c.reader:
		return &apiError{code: 403, msg: "the read-only token cannot create instances"}
	case !c.admin && c.client == "" && c.token != "":
		w.Header().Add("WWW-Authenticate", `Bearer realm="ganger"`)
		return &apiError{code: 401, msg: "wrong token"}
	case !c.admin && c.client == "" && !public:
		w.Header().Add("WWW-Authenticate", `Bearer realm="ganger"`)
		return &apiError{code: 401, msg: "service " + svc + " is not public: creating an instance needs api.token or an api.clients token"}
	case !c.admin && c.client == "" && !c.addr.IsValid():
		return &apiError{code: 400, msg: "cannot tell the client's address"}
	}
	ttl, err := readTTL(r)
	if err != nil {
		return &apiError{code: 400, msg: err.Error()}
	}
	inst, existing, err := a.Instances.Create(r.Context(), svc, c.owner(), ttl)
	if err != nil {
		return instanceFailure(w, err)
	}
	a.Log.Info("api: instance created", "instance", inst.ID, "service", svc, "owner", c.owner(), "existing", existing)
	code := http.StatusCreated
	if existing {
		code = http.StatusOK
	}
	writeJSON(w, code, inst)
	return nil
}

// readTTL reads the optional {"ttl": "30m"} body.
func readTTL(r *http.Request) (time.Duration, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 4096))
	if err != nil {
		return 0, err
	}
	if strings.TrimSpace(string(body)) == "" {
		return 0, nil
	}
	var req struct {
		TTL string `json:"ttl"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return 0, errors.New("body: want {\"ttl\": \"30m\"} or nothing: " + err.Error())
	}
	if req.TTL == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(req.TTL)
	if err != nil || d <= 0 {
		return 0, errors.New("ttl: want a duration such as 30m, got " + strconv.Quote(req.TTL))
	}
	return d, nil
}

func instanceFailure(w http.ResponseWriter, err error) error {
	var ie *InstanceError
	if !errors.As(err, &ie) {
		return err // 500
	}
	if ie.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((ie.RetryAfter+time.Second-1)/time.Second)))
	}
	return &apiError{code: ie.Status, msg: ie.Reason, err: err}
}

// listInstances: GET /v1/instances[?state=all]: the admin sees every
// instance (no secrets), a named client its own.
func (a *API) listInstances(w http.ResponseWriter, r *http.Request) error {
	if a.Instances == nil {
		writeJSON(w, 200, []view.Instance{})
		return nil
	}
	c := a.whoIs(r)
	owner := ""
	switch {
	case c.admin:
	case c.client != "":
		owner = ownerClient + c.client
	default:
		w.Header().Add("WWW-Authenticate", `Bearer realm="ganger"`)
		return &apiError{code: 401, msg: "listing instances needs api.token or an api.clients token"}
	}
	list, err := a.Instances.List(r.Context(), owner, r.URL.Query().Get("state") == "all")
	if err != nil {
		return err
	}
	for i := range list {
		if c.admin {
			hideSecrets(&list[i])
		}
	}
	writeJSON(w, 200, list)
	return nil
}

// instance finds the instance of the path and checks the caller may act
// on it: the admin (who sees no secrets), its client, or its owner token.
func (a *API) instance(w http.ResponseWriter, r *http.Request) (view.Instance, caller, error) {
	if a.Instances == nil {
		return view.Instance{}, caller{}, &apiError{code: 404, msg: "no instance service is configured"}
	}
	id := r.PathValue("id")
	c := a.whoIs(r)
	if c.token == "" {
		w.Header().Add("WWW-Authenticate", `Bearer realm="ganger"`)
		return view.Instance{}, c, &apiError{code: 401, msg: "send the instance's owner token: Authorization: Bearer <owner_token>"}
	}
	inst, owned, err := a.Instances.Get(r.Context(), id, c.token)
	notFound := &apiError{code: 404, msg: "no instance " + id + " of yours"}
	switch {
	case err != nil:
		var ie *InstanceError
		if errors.As(err, &ie) && ie.Status == 404 {
			return inst, c, notFound
		}
		return inst, c, err
	case c.admin:
		hideSecrets(&inst)
		return inst, c, nil
	case c.client != "" && inst.Owner == ownerClient+c.client:
		return inst, c, nil
	case owned:
		return inst, c, nil
	}
	return inst, c, notFound // neither theirs nor said to exist
}

func hideSecrets(inst *view.Instance) {
	for k := range inst.Secrets {
		inst.Secrets[k] = "********"
	}
	inst.Connect = ""
}

func (a *API) getInstance(w http.ResponseWriter, r *http.Request) error {
	inst, _, err := a.instance(w, r)
	if err != nil {
		return err
	}
	writeJSON(w, 200, inst)
	return nil
}

func (a *API) extendInstance(w http.ResponseWriter, r *http.Request) error {
	inst, c, err := a.instance(w, r)
	if err != nil {
		return err
	}
	got, err := a.Instances.Extend(r.Context(), inst.ID)
	if err != nil {
		return instanceFailure(w, err)
	}
	if c.admin {
		hideSecrets(&got)
	}
	a.Log.Info("api: instance extended", "instance", inst.ID, "by", c.owner(), "expires_at", got.ExpiresAt)
	writeJSON(w, 200, got)
	return nil
}

func (a *API) restartInstance(w http.ResponseWriter, r *http.Request) error {
	inst, c, err := a.instance(w, r)
	if err != nil {
		return err
	}
	got, err := a.Instances.Restart(r.Context(), inst.ID)
	if err != nil {
		return instanceFailure(w, err)
	}
	if c.admin {
		hideSecrets(&got)
	}
	a.Log.Info("api: instance restarted", "instance", inst.ID, "by", c.owner())
	writeJSON(w, 200, got)
	return nil
}

func (a *API) deleteInstance(w http.ResponseWriter, r *http.Request) error {
	inst, c, err := a.instance(w, r)
	if err != nil {
		return err
	}
	got, err := a.Instances.Delete(r.Context(), inst.ID)
	if err != nil {
		return instanceFailure(w, err)
	}
	hideSecrets(&got)
	a.Log.Info("api: instance deleted", "instance", inst.ID, "by", c.owner())
	writeJSON(w, 200, got)
	return nil
}

// instanceAddr is host:port of each of an instance's ports, by container
// port.
func instanceAddr(in view.Instance) string {
	keys := make([]string, 0, len(in.Ports))
	for k := range in.Ports {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, net.JoinHostPort(in.Host, strconv.Itoa(in.Ports[k])))
	}
	return strings.Join(out, " ")
}
