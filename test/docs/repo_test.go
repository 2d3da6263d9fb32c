package docs

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// checkout is the repository under test: its top folder and its files.
type checkout struct {
	root  string
	files []string        // slash-separated, relative to root, sorted
	top   map[string]bool // first folders of those files: "plugin", "deploy", ...
}

// openCheckout finds the repository's top folder (where go.mod is, above the
// test's working folder) and lists its files: what git tracks plus new files
// it does not ignore, so that a file someone has just added is checked too.
// Without git (an exported tree) it walks the folder, leaving out hidden
// folders and the build output.
func openCheckout(t *testing.T) *checkout {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's folder: cannot find the repository")
		}
		dir = parent
	}
	c := &checkout{root: dir, top: map[string]bool{}}
	c.files = gitFiles(dir)
	if c.files == nil {
		c.files = walkFiles(t, dir)
	}
	// A file deleted but not yet committed is listed by git and is gone.
	c.files = slices.DeleteFunc(c.files, func(f string) bool { return !c.exists(f) })
	slices.Sort(c.files)
	for _, f := range c.files {
		if first, _, ok := strings.Cut(f, "/"); ok {
			c.top[first] = true
		}
	}
	return c
}

func gitFiles(root string) []string {
	cmd := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	out, err := cmd.Output()
	if err != nil {
		return nil
	}
	var files []string
	for f := range bytes.SplitSeq(out, []byte{0}) {
		if len(f) > 0 {
			files = append(files, string(f))
		}
	}
	return slices.Compact(files)
}

func walkFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") && d.Name() != ".ci" || rel == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		files = append(files, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// exists reports whether the slash path rel (a file or a folder) is in the
// checkout.
func (c *checkout) exists(rel string) bool {
	_, err := os.Stat(filepath.Join(c.root, filepath.FromSlash(rel)))
	return err == nil
}

// withSuffix returns the listed files whose names end in suffix.
func (c *checkout) withSuffix(suffix string) []string {
	var out []string
	for _, f := range c.files {
		if strings.HasSuffix(f, suffix) {
			out = append(out, f)
		}
	}
	return out
}

// read returns a listed file's text.
func (c *checkout) read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.root, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
