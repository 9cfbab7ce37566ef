package instance

import (
	"bytes"
	"fmt"
	"strconv"
	"text/template"
)

// Values are what an instance's templates see: its secrets in cmd, env
// and the connect line ({{.Secrets.password}}), and where clients reach it
// in the connect line ({{.Host}}, {{.Port 6379}}).
type Values struct {
	Secrets map[string]string
	Host    string
	Ports   map[int]int // container port → port clients connect to
}

// Port is the port clients connect to for the container port p; it fails
// for a port the instance does not expose.
func (v Values) Port(p int) (string, error) {
	if q, ok := v.Ports[p]; ok {
		return strconv.Itoa(q), nil
	}
	return "", fmt.Errorf("port %d is not one of the instance's ports", p)
}

// Template is one parsed text template of an instance service.
type Template struct {
	src string
	t   *template.Template
}

// ParseTemplate parses s; a reference to a missing key fails when it is
// rendered.
func ParseTemplate(name, s string) (*Template, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(s)
	if err != nil {
		return nil, err
	}
	return &Template{src: s, t: t}, nil
}

// Render executes the template with v.
func (t *Template) Render(v Values) (string, error) {
	var b bytes.Buffer
	if err := t.t.Execute(&b, v); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Check renders the template with placeholder values for the named
// secrets and ports, to find a reference to anything else before an
// instance is made (config validation).
func (t *Template) Check(secrets []string, ports []int) error {
	v := Values{Secrets: map[string]string{}, Host: "host", Ports: map[int]int{}}
	for _, s := range secrets {
		v.Secrets[s] = "secret"
	}
	for _, p := range ports {
		v.Ports[p] = p
	}
	_, err := t.Render(v)
	return err
}
