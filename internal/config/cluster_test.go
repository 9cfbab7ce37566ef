package config

import (
	"strings"
	"testing"
	"time"

	"github.com/ganger-dev/ganger"
)

const zkCluster = `api: {listen: "0.0.0.0:5480"}
init_binary: $DIR/bin
services:
  - name: zk
    mode: cluster
    image: my-zookeeper:latest
    ports: [2181, 2888, 3888]
    init: ganger
    cluster:
      size: 3
      depends_on: []
    init_config:
      files:
        /conf/zoo.cfg: |
          clientPort=2181
          {{range .Peers}}server.{{add .Ordinal 1}}={{.IP}}:2888:3888
          {{end}}
        /data/myid: "{{add .Self.Ordinal 1}}"
      on_change: {restart: [zk]}
      processes:
        zk: {cmd: ["/zk/bin/start"]}
  - name: kafka
    mode: cluster
    image: my-kafka:latest
    init: ganger
    cluster:
      size: 2
      depends_on: [{cluster: zk, min_ready: 3}]
    init_config:
      processes:
        kafka: {cmd: ["/kafka/bin/start"]}
`

func TestClusterDefaults(t *testing.T) {
	cfg, err := parseInit(t, initDir(t), zkCluster)
	if err != nil {
		t.Fatal(err)
	}
	zk, kafka := cfg.Services[0], cfg.Services[1]
	k := zk.Cluster
	if !cfg.Clusters() || !cfg.Stateful() || zk.Mode != ganger.ClusterMode || zk.Port != 2181 || zk.Network != "bridge" {
		t.Fatalf("mode %s, port %d, network %s", zk.Mode, zk.Port, zk.Network)
	}
	if k.Size != 3 || k.MinReady != 3 || k.Rollout != "sequential" || k.Damper.D() != 2*time.Second ||
		k.MemberTimeout.D() != DefaultMemberTimeout || k.VolumePath != "/data" || kafka.Cluster.MinReady != 2 {
		t.Fatalf("cluster %+v; kafka's min_ready %d (want its size)", k, kafka.Cluster.MinReady)
	}
	files := zk.ClusterFiles()
	if len(files) != 2 || !strings.Contains(files["/conf/zoo.cfg"], "{{range .Peers}}") || files["/data/myid"] != "{{add .Self.Ordinal 1}}" {
		t.Fatalf("files %q", files)
	}
	if port, wild := cfg.APIPort(); port != "5480" || !wild {
		t.Fatalf("api port %q, wildcard %v", port, wild)
	}
}

// Every mistake in a cluster service is named with its key (and line).
func TestClusterErrors(t *testing.T) {
	dir := initDir(t)
	for _, tc := range []struct{ from, to, want string }{
		{"mode: cluster\n    image: my-zookeeper", "mode: cluster\n    listen: 127.0.0.1:2181\n    image: my-zookeeper", "t.yaml:6: services[0].listen: does not apply to mode: cluster"},
		{"ports: [2181, 2888, 3888]\n    init: ganger", "ports: [2181, 2888, 3888]", "services[0].init: mode: cluster needs init: ganger"},
		{"size: 3", "size: 3\n      min_ready: 4", "services[0].cluster.min_ready: want 0 to size (3), got 4"},
		{"size: 3", "size: 3\n      rollout: random", "services[0].cluster.rollout: want sequential or parallel"},
		{"size: 3", "size: 3\n      volumes: shared", "services[0].cluster.volumes: want per_ordinal"},
		{"{cluster: zk, min_ready: 3}", "{cluster: zoo, min_ready: 3}", `services[1].cluster.depends_on[0].cluster: no mode: cluster service named "zoo"`},
		{"{cluster: zk, min_ready: 3}", "{cluster: zk, min_ready: 4}", "services[1].cluster.depends_on[0].min_ready: want 0 to zk's size (3), got 4"},
		{"depends_on: []", "depends_on: [{cluster: kafka}]", "services[0].cluster.depends_on: a cycle: zk → kafka → zk"},
		{"{{add .Self.Ordinal 1}}", "{{add .Self.Ordinal 1}", "t.yaml:18: services[0].init_config.files./data/myid: template: /data/myid:1: unexpected"},
		{`"0.0.0.0:5480"`, `"127.0.0.1:5480"`, "services[0].cluster.api: missing: api.listen (127.0.0.1:5480) is not a wildcard address"},
		{"size: 3\n", "size: 3\n      api: ftp://x\n", "services[0].cluster.api: want http://HOST:PORT"},
	} {
		if !strings.Contains(zkCluster, tc.from) {
			t.Fatalf("%q is not in the config", tc.from)
		}
		_, err := parseInit(t, dir, strings.Replace(zkCluster, tc.from, tc.to, 1))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q → %q: got %v; want %q", tc.from, tc.to, err, tc.want)
		}
	}
	// cluster.api set: a loopback api.listen is fine.
	ok := strings.Replace(strings.Replace(zkCluster, `"0.0.0.0:5480"`, `"127.0.0.1:5480"`, 1), "size: 3\n", "size: 3\n      api: http://172.17.0.1:5480\n", 1)
	ok = strings.Replace(ok, "size: 2\n", "size: 2\n      api: http://172.17.0.1:5480\n", 1)
	if _, err := parseInit(t, dir, ok); err != nil {
		t.Fatal(err)
	}
}
