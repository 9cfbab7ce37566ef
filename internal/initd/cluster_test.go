package initd_test

import (
	"strings"
	"testing"

	"github.com/ganger-dev/ganger/internal/initd"
)

const clusterHead = "processes:\n  zk: {cmd: [x]}\n"

// Every mistake in files, on_change and cluster is named with its key and
// line.
func TestClusterConfigErrors(t *testing.T) {
	ok := "cluster: {api: \"http://ganger:7070\", name: zk, ordinal: 0}\n"
	for _, tc := range []struct{ yaml, want string }{
		{clusterHead + ok + "files:\n  /conf/a: \"{{.Self.IP\"\n", "init.yaml:5: files./conf/a: template: /conf/a:1: unclosed action"},
		{clusterHead + ok + "files:\n  conf/a: x\n", "files.conf/a: want an absolute path"},
		{clusterHead + ok + "files:\n  /a: \"{{nope 1}}\"\n", "function \"nope\" not defined"},
		{clusterHead + ok + "on_change:\n  restart: [zk, zz]\n", "init.yaml:5: on_change.restart.1: no process \"zz\""},
		{clusterHead + ok + "on_change:\n  signal: {zk: HUPP}\n", "init.yaml:5: on_change.signal.zk: unknown signal \"HUPP\""},
		{clusterHead + ok + "on_change:\n  restart: [zk]\n  command: [x]\n", "init.yaml:4: on_change: want exactly one of restart, signal or command"},
		{clusterHead + "cluster: {api: \"ganger:7070\", name: zk, ordinal: 0}\n", "init.yaml:3: cluster.api: want an http:// URL"},
		{clusterHead + "cluster: {api: \"http://ganger:7070\", ordinal: 0}\n", "cluster.name: want the cluster's name"},
		{clusterHead + "cluster:\n  api: \"http://ganger:7070\"\n  name: zk\n  ordinal: -1\n", "init.yaml:6: cluster.ordinal: want the member's ordinal"},
		{clusterHead + "files:\n  /a: x\n", "files: files and on_change need cluster"},
	} {
		_, err := initd.ParseConfig("init.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v; want %q", tc.yaml, err, tc.want)
		}
	}
}

// The environment, set by Ganger per member, wins over the shared file,
// and makes ganger-init a member on its own.
func TestClusterEnv(t *testing.T) {
	t.Setenv("GANGER_CLUSTER_API", "http://ganger:7070")
	t.Setenv("GANGER_CLUSTER", "zk")
	t.Setenv("GANGER_ORDINAL", "2")
	cfg, err := initd.ParseConfig("init.yaml", []byte(clusterHead+"cluster: {name: other, ordinal: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Cluster; c.API != "http://ganger:7070" || c.Name != "zk" || *c.Ordinal != 2 {
		t.Fatalf("got %+v; want the environment's", c)
	}
	cfg, err = initd.ParseConfig("init.yaml", []byte(clusterHead))
	if err != nil || cfg.Cluster == nil || *cfg.Cluster.Ordinal != 2 {
		t.Fatalf("without a cluster key: %+v, %v", cfg, err)
	}
}
