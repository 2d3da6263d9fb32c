package servicereg

import (
	"path/filepath"
	"testing"

	"github.com/rollcall/rollcall/test/testkit"
)

// TestDeployExamples loads every example agent config in deploy/, so that no
// example can rot: deploy/servicereg.yml with deploy/services.d/*.yml, and
// the per-host configs of the multi-host example.
func TestDeployExamples(t *testing.T) {
	root := testkit.RepoRoot(t)
	files := []string{filepath.Join(root, "deploy", "servicereg.yml")}
	hosts, err := filepath.Glob(filepath.Join(root, "deploy", "hosts", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, hosts...)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := LoadConfig(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Services) == 0 {
				t.Fatal("example registers no service")
			}
		})
	}
}
