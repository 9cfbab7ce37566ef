package docker

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/registry"
)

// Registry is one registry login from Ganger's config.
type Registry struct {
	Host, Username, Password string
	PasswordFile             string // read at load; wins over Password
}

// Credentials are registry logins for pulls: those in Ganger's config
// first, then those in the Docker CLI's config.json.
type Credentials struct {
	byHost map[string]registry.AuthConfig
}

// LoadCredentials reads the config's registries (and their password files)
// and the Docker CLI's config.json ($DOCKER_CONFIG, else ~/.docker), if any.
func LoadCredentials(regs []Registry) (*Credentials, error) {
	c := &Credentials{byHost: map[string]registry.AuthConfig{}}
	if err := c.loadDockerConfig(); err != nil {
		return nil, err
	}
	for _, r := range regs {
		pw := r.Password
		if r.PasswordFile != "" {
			b, err := os.ReadFile(r.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("registry %s: %w", r.Host, err)
			}
			pw = strings.TrimRight(string(b), "\r\n")
		}
		c.byHost[r.Host] = registry.AuthConfig{Username: r.Username, Password: pw, ServerAddress: r.Host}
	}
	return c, nil
}

func (c *Credentials) loadDockerConfig() error {
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil
		}
		dir = filepath.Join(home, ".docker")
	}
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	var f struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	for host, a := range f.Auths {
		raw, err := base64.StdEncoding.DecodeString(a.Auth)
		user, pw, ok := strings.Cut(string(raw), ":")
		if err != nil || !ok {
			continue // a credential helper's entry, or none: pull anonymously
		}
		host = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(host, "https://"), "http://"), "/v1/")
		c.byHost[host] = registry.AuthConfig{Username: user, Password: pw, ServerAddress: host}
	}
	return nil
}

// For returns the encoded login for the registry of image ref, or "".
func (c *Credentials) For(ref string) string {
	if c == nil {
		return ""
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ""
	}
	host := reference.Domain(named)
	a, ok := c.byHost[host]
	if !ok && host == "docker.io" {
		a, ok = c.byHost["index.docker.io"]
	}
	if !ok {
		return ""
	}
	enc, err := authconfig.Encode(a)
	if err != nil {
		return ""
	}
	return enc
}
