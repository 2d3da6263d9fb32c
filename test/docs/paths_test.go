package docs

import (
	"fmt"
	"go/scanner"
	"go/token"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestRepoPathsExist fails for every repository path named in a Markdown
// file or a Go comment that does not exist, and for every pointer out of the
// repository (a reader who clones rollcall has only what is in it). Each
// finding says file:line, the path as written and what is wrong.
//
// What counts as a path, so that prose never trips it:
//   - a word with a slash whose first folder is a top-level folder of the
//     repository (plugin/rollcall/loader.go, deploy/rbac.sh, cmd/..., internal/*),
//     read from the top of the repository;
//   - a word starting with ../, read from the folder of the file it is in;
//   - in Markdown, a link target without a scheme or a fragment alone, read
//     from the file's folder (a leading / from the top);
//   - a word whose first folder is one of outsideFolders: a folder beside
//     the repository in the workplace, never part of it.
//
// Words starting with / (system paths such as /etc/servicereg/) and words
// glued to a ':' or '@' (URLs, user@host:path) are not repository paths.
// A '*' matches as in a shell glob, and so does a lone capital standing for
// a number or name inside a file name (deploy/etcd/etcdN.yml). A generated
// file (BENCHMARKS.md, whose profiles name packages of Go's own runtime) is
// left to its generator, whose comments are checked.
func TestRepoPathsExist(t *testing.T) {
	c := openCheckout(t)
	var problems []string
	report := func(file string, line int, p, why string) {
		problems = append(problems, fmt.Sprintf("%s:%d: %s: %s", file, line, p, why))
	}
	for _, f := range c.withSuffix(".md") {
		dir := path.Dir(f)
		src := c.read(t, f)
		if generated(src) {
			continue
		}
		fenced := false
		for i, text := range strings.Split(src, "\n") {
			for _, p := range pathWords(text) {
				if why := c.check(dir, p); why != "" {
					report(f, i+1, p, why)
				}
			}
			if fence.MatchString(text) {
				fenced = !fenced
			}
			if fenced {
				continue // no links in a code block
			}
			for _, target := range linkTargets(text) {
				if why := c.checkLink(dir, target); why != "" {
					report(f, i+1, target, why)
				}
			}
		}
	}
	for _, f := range c.withSuffix(".go") {
		dir := path.Dir(f)
		src := c.read(t, f)
		if generated(src) {
			continue
		}
		for _, cm := range goComments(src) {
			for _, p := range pathWords(cm.text) {
				if why := c.check(dir, p); why != "" {
					report(f, cm.line, p, why)
				}
			}
		}
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// generatedMark is how a generated file says so near its top: Go's
// "Code generated ... DO NOT EDIT." or the report's "do not edit by hand".
var generatedMark = regexp.MustCompile(`(?m)^// Code generated .* DO NOT EDIT\.$|(?i)do not edit by hand`)

// generated reports whether a file says, in its first lines, that a program
// writes it.
func generated(src string) bool {
	head := src
	if len(head) > 1000 {
		head = head[:1000]
	}
	return generatedMark.MatchString(head)
}

// outsideFolders are folders beside the repository in the workplace that a
// comment may be tempted to cite; nothing in them ships with rollcall.
var outsideFolders = map[string]bool{notesFolder: true}

// notesFolder is the workplace folder that held the design's first notes.
const notesFolder = "shared"

// pathRun is a run of the characters a repository path is written with.
var pathRun = regexp.MustCompile(`[A-Za-z0-9_.*/-]+`)

// pathWords returns the words of text that may be paths: runs of path
// characters holding a slash, not glued to a ':' or '@' before them,
// without a trailing sentence dot.
func pathWords(text string) []string {
	var out []string
	for _, m := range pathRun.FindAllStringIndex(text, -1) {
		if m[0] > 0 && strings.ContainsRune(":@", rune(text[m[0]-1])) {
			continue
		}
		w := strings.TrimRight(text[m[0]:m[1]], ".")
		if strings.Contains(w, "/") && !strings.HasPrefix(w, "/") {
			out = append(out, w)
		}
	}
	return out
}

// check says what is wrong with the path word p met in a file of folder
// dir ("" when nothing is, or when p is no repository path).
func (c *checkout) check(dir, p string) string {
	if strings.HasPrefix(p, "../") {
		return c.checkFrom(dir, p)
	}
	for strings.HasPrefix(p, "./") {
		p = p[2:]
	}
	first, rest, ok := strings.Cut(p, "/")
	switch {
	case !ok:
		return ""
	case outsideFolders[first] && rest != "":
		return "points outside the repository"
	case !c.top[first]:
		return ""
	}
	return c.missing(strings.TrimSuffix(p, "/"))
}

// checkFrom checks p read from folder dir of the repository.
func (c *checkout) checkFrom(dir, p string) string {
	rel := path.Join(dir, p)
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "points outside the repository"
	}
	if first, _, _ := strings.Cut(rel, "/"); outsideFolders[first] {
		return "points outside the repository"
	}
	return c.missing(rel)
}

// markdownLink matches an inline link or image target, [text](target) or
// [text](target "title"), and a reference definition, [label]: target.
var markdownLink = regexp.MustCompile(`\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)|^\s*\[[^\]]+\]:\s*<?([^\s>]+)`)

// fence opens or closes a Markdown code block.
var fence = regexp.MustCompile("^\\s*(```|~~~)")

// codeSpan is inline code, where brackets are text, not links.
var codeSpan = regexp.MustCompile("`[^`]*`")

// linkTargets returns the link targets of a Markdown line outside a code
// block.
func linkTargets(text string) []string {
	var out []string
	text = codeSpan.ReplaceAllString(text, "``")
	for _, m := range markdownLink.FindAllStringSubmatch(text, -1) {
		for _, g := range m[1:] {
			if g != "" {
				out = append(out, g)
			}
		}
	}
	return out
}

// scheme matches a URL scheme (https:, mailto:): such a link leaves the
// repository on purpose.
var scheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)

// checkLink checks a Markdown link target met in a file of folder dir.
func (c *checkout) checkLink(dir, target string) string {
	if scheme.MatchString(target) || strings.HasPrefix(target, "#") {
		return ""
	}
	target, _, _ = strings.Cut(target, "#")
	target, _, _ = strings.Cut(target, "?")
	if target == "" {
		return ""
	}
	if strings.HasPrefix(target, "/") {
		return c.checkFrom(".", strings.TrimLeft(target, "/"))
	}
	return c.checkFrom(dir, target)
}

// missing returns "" when rel exists (as a glob, when it has one), else why
// it does not.
func (c *checkout) missing(rel string) string {
	rel = path.Clean(rel)
	if !strings.Contains(rel, "*") && c.exists(rel) {
		return ""
	}
	for _, pattern := range []string{rel, placeholders(rel)} {
		if m, _ := filepath.Glob(filepath.Join(c.root, filepath.FromSlash(pattern))); len(m) > 0 {
			return ""
		}
	}
	return "no such file or folder in the repository"
}

// placeholders turns a lone capital inside a name into '*': etcdN.yml and
// hostN.yml stand for etcd1.yml and host1.yml. A capital next to another
// letter of a word (DESIGN.md, Corefile) stays as it is.
func placeholders(p string) string {
	b := []byte(p)
	for i := 1; i < len(b); i++ {
		c := b[i]
		if c < 'A' || c > 'Z' || !isLowerOrDigit(b[i-1]) {
			continue
		}
		if i+1 < len(b) && isLetter(b[i+1]) {
			continue
		}
		b[i] = '*'
	}
	return string(b)
}

func isLowerOrDigit(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
func isLetter(c byte) bool       { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// comment is one line of a Go comment.
type comment struct {
	line int
	text string
}

// goComments returns every line of every comment in a Go source file. It
// uses the scanner, not the parser, so string literals are left out and a
// file in the middle of an edit is still read.
func goComments(src string) []comment {
	fset := token.NewFileSet()
	file := fset.AddFile("", fset.Base(), len(src))
	var s scanner.Scanner
	s.Init(file, []byte(src), func(token.Position, string) {}, scanner.ScanComments)
	var out []comment
	for {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			return out
		}
		if tok != token.COMMENT {
			continue
		}
		line := fset.Position(pos).Line
		for i, text := range strings.Split(lit, "\n") {
			out = append(out, comment{line + i, text})
		}
	}
}

// TestPathRules pins what TestRepoPathsExist takes for a path, on lines as
// they occur in this repository's files.
func TestPathRules(t *testing.T) {
	c := openCheckout(t)
	cases := []struct {
		name string
		dir  string // folder of the file the line is in
		line string
		want []string // "path: why" of each problem
	}{
		{name: "file exists", dir: ".", line: "see `plugin/rollcall/loader.go` and deploy/rbac.sh.", want: nil},
		{name: "file missing", dir: ".", line: "see plugin/rollcall/nope.go", want: []string{"plugin/rollcall/nope.go: no such file or folder in the repository"}},
		{name: "folder and package pattern", dir: ".", line: "go test ./cmd/... internal/ test/e2e", want: nil},
		{name: "glob", dir: ".", line: "deploy/services.d/*.yml", want: nil},
		{name: "placeholder capital", dir: "docs", line: "`deploy/etcd/etcdN.yml` on host N", want: nil},
		{name: "placeholder does not hide a word", dir: ".", line: "docs/NOPE.md", want: []string{"docs/NOPE.md: no such file or folder in the repository"}},
		{name: "workplace folder", dir: "plugin/rollcall", line: "(" + notesFolder + "/DESIGN.md, \"Views\")", want: []string{notesFolder + "/DESIGN.md: points outside the repository"}},
		{name: "up and out", dir: "docs", line: "../../notes/DESIGN.md", want: []string{"../../notes/DESIGN.md: points outside the repository"}},
		{name: "up to a sibling outside", dir: ".", line: "../notes/DESIGN.md", want: []string{"../notes/DESIGN.md: points outside the repository"}},
		{name: "up within", dir: "docs", line: "../deploy/README.md", want: nil},
		{name: "link relative to the file", dir: "docs", line: "[deploy](../deploy/README.md) [tour](TOUR.md#2-register-a-unit)", want: nil},
		{name: "broken link", dir: "plugin/rollcall", line: "[x](setup.go) [y](../../README.md) [z](deploy/README.md)", want: []string{"deploy/README.md: no such file or folder in the repository"}},
		{name: "links that leave on purpose", dir: ".", line: "[rfc](https://www.rfc-editor.org/rfc/rfc8020) [top](#keys) [m](mailto:a@b)", want: nil},
		{name: "system paths", dir: ".", line: "/etc/servicereg/servicereg.yml ~/.config/systemd/user $XDG_RUNTIME_DIR/systemd/private", want: nil},
		{name: "URLs and hosts", dir: ".", line: "http://127.0.0.1:2379/plugin/x git@host:plugin/x", want: nil},
		{name: "module paths", dir: ".", line: "go.etcd.io/etcd/client/v3/concurrency github.com/rollcall/rollcall/plugin/nope", want: nil},
		{name: "key layout is no path", dir: ".", line: "P/hosts/<host>/services/<service>", want: nil},
		{name: "sentence end", dir: ".", line: "it lives in registry/keys.go.", want: nil},
		{name: "brackets in code are no link", dir: "docs", line: "labels: `[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?`", want: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, p := range pathWords(tc.line) {
				if why := c.check(tc.dir, p); why != "" {
					got = append(got, p+": "+why)
				}
			}
			for _, target := range linkTargets(tc.line) {
				if why := c.checkLink(tc.dir, target); why != "" {
					got = append(got, target+": "+why)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("line %q in %s/:\ngot  %q\nwant %q", tc.line, tc.dir, got, tc.want)
			}
		})
	}
}
