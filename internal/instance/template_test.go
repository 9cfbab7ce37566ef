package instance

import (
	"strings"
	"testing"
)

func TestTemplates(t *testing.T) {
	t.Parallel()
	conn, err := ParseTemplate("connect", "redis://:{{.Secrets.password}}@{{.Host}}:{{.Port 6379}}")
	if err != nil {
		t.Fatal(err)
	}
	v := Values{Secrets: map[string]string{"password": "s3cret"}, Host: "10.0.0.5", Ports: map[int]int{6379: 20517}}
	if got, err := conn.Render(v); err != nil || got != "redis://:s3cret@10.0.0.5:20517" {
		t.Fatalf("connect line %q, %v", got, err)
	}
	if err := conn.Check([]string{"password"}, []int{6379}); err != nil {
		t.Fatalf("check with the secret and port it uses: %v", err)
	}
	for _, tc := range []struct {
		secrets []string
		ports   []int
		want    string
	}{
		{nil, []int{6379}, "password"},
		{[]string{"password"}, []int{6380}, "port 6379"},
	} {
		if err := conn.Check(tc.secrets, tc.ports); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("check with secrets %v ports %v: %v; want an error naming %s", tc.secrets, tc.ports, err, tc.want)
		}
	}
	if _, err := ParseTemplate("cmd", "{{.Secrets.password"); err == nil {
		t.Fatal("an unclosed action parsed")
	}
}
