// Package docs keeps rollcall's documentation true to the repository:
// every repository path named in a Markdown file or a Go comment exists, and
// nothing points outside the repository (paths_test.go); every package's
// doc.go names each of its source files (docmap_test.go). The checks read
// files only and start no server. The tests live in *_test.go files; this
// file only documents them.
package docs
