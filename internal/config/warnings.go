package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// Warnings lists the settings of a loaded file that work but weaken
// isolation, one a line in the form of an error ("ganger.yaml:12:
// services[0].limits.cap_add[0]: ..."). They do not stop the file loading:
// `ganger check` prints them and `ganger serve` logs them.
func (c *Config) Warnings() []string {
	out := make([]string, len(c.warnings))
	for i, w := range c.warnings {
		out[i] = w.Error()
	}
	return out
}

// warn collects the warnings of a valid configuration.
func (c *Config) warn(pos *positions) []Error {
	v := &validator{pos: pos}
	for i, s := range c.Services {
		p := fmt.Sprintf("services[%d]", i)
		for j, cp := range s.Limits.CapAdd {
			if strings.TrimPrefix(strings.ToUpper(cp), "CAP_") == "SYS_ADMIN" {
				v.fail(fmt.Sprintf("%s.limits.cap_add[%d]", p, j), "%s lets the container mount file systems, create namespaces and more: close to root on the host; grant a narrower capability if one will do", cp)
			}
		}
		if !s.Limits.NoNewPrivileges {
			v.fail(p+".limits.no_new_privileges", "false lets setuid binaries and file capabilities in the image gain privileges; keep true unless the service needs them")
		}
		if s.MaxContainers > 0 && (s.PerIP == 0 || s.PerIP >= s.MaxContainers) {
			v.fail(p+".per_ip", "one client address may hold all %d of the service's containers (per_ip %d): set per_ip below max_containers unless many clients share an address", s.MaxContainers, s.PerIP)
		}
		if proto, ok := serverFirst[s.Port]; ok && s.Start == "data" {
			v.fail(p+".start", "data waits for the client's first byte, but port %d is %s's, where the server speaks first: its clients would wait in silence until ready.first_byte closes them; use start: connect", s.Port, proto)
		}
		for j, t := range s.TrustedProxies {
			if pr, err := ParsePrefix(t); err == nil && everyAddress(pr) {
				v.fail(fmt.Sprintf("%s.trusted_proxies[%d]", p, j), "%s trusts every address: any client can send a PROXY header and claim any source address, past per_ip and per_ip_rate", t)
			}
		}
	}
	return v.errs
}

// serverFirst are the well-known ports of protocols whose server speaks
// first (a greeting, a banner, a handshake): start: data cannot work
// there. It is what Ganger can know of a service's protocol without
// running it.
var serverFirst = map[int]string{
	21: "FTP", 22: "SSH", 23: "Telnet", 25: "SMTP", 110: "POP3", 143: "IMAP", 465: "SMTP",
	587: "SMTP", 993: "IMAP", 995: "POP3", 3306: "MySQL", 5900: "VNC",
}

// everyAddress reports a prefix that holds every IPv4 or IPv6 address:
// 0.0.0.0/0, ::/0, or ::ffff:0.0.0.0/96 (every IPv4 address, mapped).
func everyAddress(p netip.Prefix) bool {
	mapped := netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff})
	return p.Bits() == 0 || p.Addr().Is6() && p.Bits() <= 96 && p.Contains(mapped)
}
