package discovery

import (
	"os/exec"
	"strings"
	"testing"
)

// Only this package imports etcd's client (and its logger): the rest of
// Ganger sees etcd through this package's API.
func TestOnlyDiscoveryImportsEtcd(t *testing.T) {
	out, err := exec.Command("go", "list", "-e", "-f",
		`{{.ImportPath}}{{range .Imports}} {{.}}{{end}}{{range .TestImports}} {{.}}{{end}}{{range .XTestImports}} {{.}}{{end}}`,
		"github.com/ganger-dev/ganger/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const self = "github.com/ganger-dev/ganger/internal/discovery"
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 10 {
		t.Fatalf("go list gave an unlikely list:\n%s", out)
	}
	for _, line := range lines {
		pkg, imports, _ := strings.Cut(line, " ")
		if pkg == self {
			continue
		}
		for _, imp := range strings.Fields(imports) {
			if strings.HasPrefix(imp, "go.etcd.io/") || strings.HasPrefix(imp, "go.uber.org/zap") {
				t.Errorf("%s imports %s: only %s may", pkg, imp, self)
			}
		}
	}
}
