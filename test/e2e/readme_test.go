package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rollcall/rollcall/test/testkit"
)

// TestReadmeNamesRealTests keeps the README's reliability section honest:
// every test or fuzz target it names as evidence (`TestX`, `FuzzX`) and
// every file it points at exists, so renaming a test cannot leave a claim
// without its proof.
func TestReadmeNamesRealTests(t *testing.T) {
	root := testkit.RepoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	decl := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz)\w+)\(`)
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllStringSubmatch(string(b), -1) {
			defined[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	named := regexp.MustCompile("`((?:Test|Fuzz)[A-Z]\\w*)`").FindAllStringSubmatch(string(readme), -1)
	if len(named) < 10 {
		t.Fatalf("README.md names %d tests; its reliability section should name the tests behind each guarantee", len(named))
	}
	for _, m := range named {
		if !defined[m[1]] {
			t.Errorf("README.md names %s, which no _test.go file defines", m[1])
		}
	}
	files := regexp.MustCompile("`((?:[a-z]+/)+[a-z_]+(?:_test)?\\.go)`").FindAllStringSubmatch(string(readme), -1)
	for _, m := range files {
		if _, err := os.Stat(filepath.Join(root, m[1])); err != nil {
			t.Errorf("README.md points at %s: %v", m[1], err)
		}
	}
}
