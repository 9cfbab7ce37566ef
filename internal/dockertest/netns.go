package dockertest

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Outside is a listener that stands for "beyond this host" without any
// traffic leaving the machine: a network namespace of the test's own,
// joined to the host by a veth pair and reached only through the host's
// forwarding, as an address on another network would be. Addr is where it
// listens (the demo image's binary, echoing).
type Outside struct {
	Addr string
	ns   string
	cmd  *exec.Cmd
}

// StartOutside makes the namespace and its listener; t's cleanup removes
// both. Number n (1-9) keeps parallel packages apart.
func StartOutside(t testing.TB, n int, echoBinary string) *Outside {
	t.Helper()
	o := &Outside{ns: fmt.Sprintf("gout%d", n)}
	host, peer := fmt.Sprintf("gouth%d", n), fmt.Sprintf("goutp%d", n)
	hostIP, peerIP := fmt.Sprintf("10.251.%d.1", n), fmt.Sprintf("10.251.%d.2", n)
	o.cleanup(host)
	t.Cleanup(func() { o.cleanup(host) })
	for _, args := range [][]string{
		{"netns", "add", o.ns},
		{"link", "add", host, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", o.ns},
		{"addr", "add", hostIP + "/30", "dev", host},
		{"link", "set", host, "up"},
		{"-n", o.ns, "addr", "add", peerIP + "/30", "dev", peer},
		{"-n", o.ns, "link", "set", peer, "up"},
		{"-n", o.ns, "link", "set", "lo", "up"},
		{"-n", o.ns, "route", "add", "default", "via", hostIP},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	o.Addr = peerIP + ":7000"
	o.cmd = exec.Command("ip", "netns", "exec", o.ns, echoBinary, "-listen", o.Addr)
	if err := o.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for range 100 { // until it listens
		if exec.Command("ip", "netns", "exec", o.ns, "bash", "-c", "exec 3<>/dev/tcp/"+peerIP+"/7000").Run() == nil {
			return o
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the outside listener at %s never answered", o.Addr)
	return nil
}

func (o *Outside) cleanup(hostIf string) {
	if o.cmd != nil && o.cmd.Process != nil {
		o.cmd.Process.Kill()
		o.cmd.Wait()
	}
	exec.Command("ip", "link", "del", hostIf).Run()
	exec.Command("ip", "netns", "del", o.ns).Run()
}
