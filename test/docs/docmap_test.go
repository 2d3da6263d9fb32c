package docs

import (
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDocFileMaps keeps every package's file map true. A package with two or
// more source files (not counting doc.go and tests) has a doc.go, and the
// doc.go of every package names each of its source files, and no file the
// package does not have, so that a newcomer reads in one place which file
// does what and where to start.
func TestDocFileMaps(t *testing.T) {
	c := openCheckout(t)
	pkgs := map[string][]string{} // folder -> source files, doc.go left out
	hasDoc := map[string]bool{}
	for _, f := range c.withSuffix(".go") {
		dir, name := path.Split(f)
		dir = path.Clean(dir)
		if strings.HasSuffix(name, "_test.go") || slices.Contains(strings.Split(dir, "/"), "testdata") {
			continue
		}
		if name == "doc.go" {
			hasDoc[dir] = true
			continue
		}
		pkgs[dir] = append(pkgs[dir], name)
	}
	for dir := range hasDoc {
		if _, ok := pkgs[dir]; !ok {
			pkgs[dir] = nil // documents its tests only
		}
	}
	for _, dir := range slices.Sorted(maps.Keys(pkgs)) {
		files := pkgs[dir]
		if !hasDoc[dir] {
			if len(files) > 1 {
				t.Errorf("%s: %d source files (%s) and no doc.go: add one with the package comment and a line per file", dir, len(files), strings.Join(files, ", "))
			}
			continue
		}
		named := fileNames(c.read(t, path.Join(dir, "doc.go")))
		for _, f := range files {
			if !named[f] {
				t.Errorf("%s/doc.go does not name %s: add a line saying what it is for", dir, f)
			}
		}
		for f := range named {
			if f != "doc.go" && !slices.Contains(files, f) {
				t.Errorf("%s/doc.go names %s, which is not a source file of the package", dir, f)
			}
		}
	}
}

// goFileName is a bare Go file name in a comment: not part of a path (a
// name after a slash belongs to another folder) and not a test file.
var goFileName = regexp.MustCompile(`(?:^|[^A-Za-z0-9_./-])([a-z0-9_]+\.go)\b`)

// fileNames returns the bare Go file names the comments of a doc.go name.
func fileNames(src string) map[string]bool {
	named := map[string]bool{}
	for _, cm := range goComments(src) {
		for _, m := range goFileName.FindAllStringSubmatch(cm.text, -1) {
			if !strings.HasSuffix(m[1], "_test.go") {
				named[m[1]] = true
			}
		}
	}
	return named
}
