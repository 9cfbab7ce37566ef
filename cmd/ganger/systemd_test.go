package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ganger-dev/ganger/internal/config"
	"github.com/ganger-dev/ganger/internal/server"
)

var units = []string{"ganger.service", "ganger-agent.service"}

// unitFile reads a unit's KEY=VALUE lines (comments and sections aside);
// a key given twice keeps every value.
func unitFile(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kv := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not KEY=VALUE: %q", path, line)
		}
		kv[k] = append(kv[k], v)
	}
	return kv
}

// systemd-analyze verify accepts both units without a word: no unknown or
// misspelt key, no bad value, commands that exist.
//
// verify also checks that every Exec*= command is an executable file;
// /usr/local/bin/ganger is not installed here. So the units are verified
// as copies in which that path, and only that path, is the ganger this
// test built (the copies keep their names: verify reads the unit type and
// name from them). The rest, /bin/kill included, is checked as written.
// (systemd-analyze verify --root= would take the files as they are, but
// needs a whole systemd tree under that root.)
func TestSystemdUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian's package systemd): cannot verify the units")
	}
	dir := t.TempDir()
	var paths []string
	for _, u := range units {
		b, err := os.ReadFile(filepath.Join("../../examples/systemd", u))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "\nExecStart=/usr/local/bin/ganger ") {
			t.Fatalf("%s: ExecStart is not /usr/local/bin/ganger", u)
		}
		copied := strings.ReplaceAll(string(b), "=/usr/local/bin/ganger ", "="+binary+" ")
		if strings.Contains(copied, "/usr/local/bin/ganger ") {
			t.Fatalf("%s: /usr/local/bin/ganger where the copy does not replace it", u)
		}
		p := filepath.Join(dir, u)
		if err := os.WriteFile(p, []byte(copied), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	out, err := exec.Command(analyze, append([]string{"verify", "--man=no"}, paths...)...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	// And their exposure stays low (systemd's 0-10 scale, 10 the worst;
	// --threshold is in tenths): a lost hardening line shows here.
	for _, p := range paths {
		out, err := exec.Command(analyze, "security", "--offline=true", "--threshold=20", p).CombinedOutput()
		if strings.Contains(string(out), "Unknown option") || strings.Contains(string(out), "unrecognized option") {
			t.Logf("systemd-analyze security --offline unsupported here (systemd < 250): %s", out)
			break
		}
		if err != nil {
			t.Errorf("%s: exposure above 2.0: %v\n%s", filepath.Base(p), err, out)
		}
	}
}

// What the units promise matches the code: Type=notify (serve and agent
// notify), timeouts that cover what Ganger waits for, the reload signal,
// a state directory where the agent keeps its id, the Docker group only.
func TestSystemdUnitsMatchTheCode(t *testing.T) {
	dur := func(t *testing.T, u, k, v string) time.Duration {
		t.Helper()
		if v == "infinity" {
			return 1<<63 - 1
		}
		d, err := time.ParseDuration(strings.ReplaceAll(v, "min", "m"))
		if err != nil {
			t.Fatalf("%s: %s=%s: %v", u, k, v, err)
		}
		return d
	}
	for _, u := range units {
		kv := unitFile(t, filepath.Join("../../examples/systemd", u))
		one := func(k string) string {
			t.Helper()
			if len(kv[k]) != 1 {
				t.Fatalf("%s: %s=%q; want it once", u, k, kv[k])
			}
			return kv[k][0]
		}
		for k, want := range map[string]string{"Type": "notify", "User": "ganger", "Group": "ganger",
			"SupplementaryGroups": "docker", "CapabilityBoundingSet": "", "NoNewPrivileges": "yes",
			"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "Restart": "on-failure"} {
			if got := one(k); got != want {
				t.Errorf("%s: %s=%s; want %s", u, k, got, want)
			}
		}
		// The watchdog is pinged every half of it: it must leave room.
		if wd := dur(t, u, "WatchdogSec", one("WatchdogSec")); wd < 10*time.Second {
			t.Errorf("%s: WatchdogSec=%v: too short for pings every %v", u, wd, wd/2)
		}
		stop := dur(t, u, "TimeoutStopSec", one("TimeoutStopSec"))
		start := dur(t, u, "TimeoutStartSec", one("TimeoutStartSec"))
		argv := strings.Fields(one("ExecStart"))
		switch u {
		case "ganger.service":
			if strings.Join(argv[1:], " ") != "serve --config "+systemConfig {
				t.Errorf("%s: ExecStart=%s; want ganger serve --config %s", u, argv, systemConfig)
			}
			if one("ExecReload") != "/bin/kill -HUP $MAINPID" {
				t.Errorf("%s: ExecReload=%s; want SIGHUP to the main process", u, one("ExecReload"))
			}
			// Shutdown: the default drain, the removal of every container,
			// the API's close.
			if need := config.DefaultDrain + server.CleanupTimeout + 5*time.Second; stop < need {
				t.Errorf("%s: TimeoutStopSec=%v < %v (drain, clean-up)", u, stop, need)
			}
			if start <= server.SetupTimeout {
				t.Errorf("%s: TimeoutStartSec=%v: start-up may take %v", u, start, server.SetupTimeout)
			}
			if one("StateDirectory") != "ganger" {
				t.Errorf("%s: StateDirectory=%s; want ganger (/var/lib/ganger)", u, one("StateDirectory"))
			}
		case "ganger-agent.service":
			cfg, err := parseAgentFlags(append(argv[2:len(argv)-1], "--etcd", "http://e:2379", "--name", "h", "--advertise", "a"), os.Stderr)
			if argv[1] != "agent" || argv[len(argv)-1] != "$GANGER_AGENT_ARGS" || err != nil {
				t.Fatalf("%s: ExecStart=%s: %v", u, argv, err)
			}
			if want := "/var/lib/" + one("StateDirectory"); cfg.stateDir != want {
				t.Errorf("%s: --state-dir %s; want the StateDirectory %s", u, cfg.stateDir, want)
			}
			if stop < cfg.drainTimeout+10*time.Second {
				t.Errorf("%s: TimeoutStopSec=%v: shorter than the default --drain-timeout %v and the deregistration", u, stop, cfg.drainTimeout)
			}
			if _, ok := kv["ExecReload"]; ok {
				t.Errorf("%s: ExecReload: the agent has no reload (SIGHUP would end it)", u)
			}
		}
	}
}
