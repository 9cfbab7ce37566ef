package api

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/ganger-dev/ganger/internal/view"
)

// The one-click page: GET /instances shows a button per public instance
// service; the button's form post makes an instance for the client's
// address and keeps its owner token in a cookie that only this site and
// only these pages get; GET /instances/i/{id} shows where to connect and
// the secrets, and buttons to extend and delete. It needs no JavaScript
// (its one script only adds copy buttons) and no token.

var instancePage = template.Must(template.New("instances.html").Funcs(template.FuncMap{
	"until": func(t time.Time) string { return max(time.Until(t), 0).Round(time.Second).String() },
}).ParseFS(files, "instances.html"))

// pageCSP lets the page apply its inline style, run its one inline script
// (it shows the Copy buttons, hidden where no script runs) and post its
// own forms. The script holds no comment: html/template strips comments,
// and the hash is of the file's text.
var pageCSP = "default-src 'none'; style-src '" + elementHash("instances.html", "style") + "'; script-src '" + elementHash("instances.html", "script") +
	"'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// elementHash is the CSP hash of the first such element of an embedded
// page.
func elementHash(file, element string) string {
	b, err := files.ReadFile(file)
	if err != nil {
		panic(err)
	}
	_, rest, _ := strings.Cut(string(b), "<"+element+">")
	body, _, ok := strings.Cut(rest, "</"+element+">")
	if !ok {
		panic(file + " has no <" + element + "> element")
	}
	sum := sha256.Sum256([]byte(body))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

const ownerCookie = "ganger_owner_"

func (a *API) pageHandlers(mux *http.ServeMux) {
	mux.HandleFunc("GET /instances", a.pageIndex)
	mux.HandleFunc("POST /instances/{svc}", a.pageCreate)
	mux.HandleFunc("GET /instances/i/{id}", a.pageInstance)
	mux.HandleFunc("POST /instances/i/{id}/extend", a.pageAct)
	mux.HandleFunc("POST /instances/i/{id}/delete", a.pageAct)
}

// render writes the page; secrets on it must never be cached.
func (a *API) render(w http.ResponseWriter, code int, data map[string]any) {
	h := w.Header()
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if err := instancePage.Execute(w, data); err != nil {
		a.Log.Error("instances page", "err", err)
	}
}

// publicServices are the instance services anyone may create.
func (a *API) publicServices(names []string) []string {
	var out []string
	for _, n := range names {
		if _, public := a.Instances.Public(n); public {
			out = append(out, n)
		}
	}
	return out
}

func (a *API) pageIndex(w http.ResponseWriter, r *http.Request) {
	if a.Instances == nil {
		a.render(w, 404, map[string]any{"Error": "no instance service is configured"})
		return
	}
	data := map[string]any{"Services": a.publicServices(a.InstanceServices)}
	var mine []view.Instance
	for _, c := range r.Cookies() {
		id, ok := strings.CutPrefix(c.Name, ownerCookie)
		if !ok {
			continue
		}
		if in, owned, err := a.Instances.Get(r.Context(), id, c.Value); err == nil && owned && in.EndedAt == nil {
			mine = append(mine, in)
		}
	}
	data["Mine"] = mine
	a.render(w, 200, data)
}

func (a *API) pageCreate(w http.ResponseWriter, r *http.Request) {
	if a.Instances == nil {
		a.render(w, 404, map[string]any{"Error": "no instance service is configured"})
		return
	}
	svc := r.PathValue("svc")
	if _, public := a.Instances.Public(svc); !public {
		a.render(w, 404, map[string]any{"Error": "no public instance service " + svc, "Services": a.publicServices(a.InstanceServices)})
		return
	}
	c := a.whoIs(r)
	if !c.addr.IsValid() {
		a.render(w, 400, map[string]any{"Error": "cannot tell your address"})
		return
	}
	inst, _, err := a.Instances.Create(r.Context(), svc, ownerAddr+c.addr.String(), 0)
	if err != nil {
		code, msg := 500, "internal error"
		var ie *InstanceError
		if errors.As(err, &ie) {
			code, msg = ie.Status, ie.Reason
		}
		a.Log.Warn("page: instance not created", "service", svc, "owner", ownerAddr+c.addr.String(), "status", code, "reason", msg, "err", err)
		a.render(w, code, map[string]any{"Error": msg, "Services": a.publicServices(a.InstanceServices)})
		return
	}
	if inst.OwnerToken != "" { // an existing one given back has none: its cookie is set already
		http.SetCookie(w, &http.Cookie{
			Name: ownerCookie + inst.ID, Value: inst.OwnerToken, Path: "/instances",
			Expires: inst.MaxExpiresAt, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
		})
	}
	a.Log.Info("page: instance created", "instance", inst.ID, "service", svc, "owner", ownerAddr+c.addr.String())
	http.Redirect(w, r, "/instances/i/"+inst.ID, http.StatusSeeOther)
}

// pageOwned returns the instance of the path if the browser holds its
// owner token.
func (a *API) pageOwned(w http.ResponseWriter, r *http.Request) (view.Instance, bool) {
	id := r.PathValue("id")
	if a.Instances != nil {
		if c, err := r.Cookie(ownerCookie + id); err == nil {
			if in, owned, err := a.Instances.Get(r.Context(), id, c.Value); err == nil && owned {
				return in, true
			}
		}
	}
	a.render(w, 404, map[string]any{"Error": "no instance " + id + " of yours in this browser"})
	return view.Instance{}, false
}

func (a *API) pageInstance(w http.ResponseWriter, r *http.Request) {
	if in, ok := a.pageOwned(w, r); ok {
		a.render(w, 200, map[string]any{"Inst": in})
	}
}

func (a *API) pageAct(w http.ResponseWriter, r *http.Request) {
	in, ok := a.pageOwned(w, r)
	if !ok {
		return
	}
	var err error
	if strings.HasSuffix(r.URL.Path, "/extend") {
		_, err = a.Instances.Extend(r.Context(), in.ID)
	} else {
		_, err = a.Instances.Delete(r.Context(), in.ID)
	}
	if err != nil {
		var ie *InstanceError
		msg := "internal error"
		if errors.As(err, &ie) {
			msg = ie.Reason
		}
		if now, _, err := a.Instances.Get(r.Context(), in.ID, ""); err == nil {
			in = now
		}
		a.render(w, 409, map[string]any{"Inst": in, "Error": msg})
		return
	}
	http.Redirect(w, r, "/instances/i/"+in.ID, http.StatusSeeOther)
}
