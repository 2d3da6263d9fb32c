package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollcall/rollcall/test/testkit"
)

// TestAPISmoke runs the api part in quick mode: the server with `http`
// starts, every API answer is right (200, the service and its instances),
// every blocking query wakes after its write with the new index, and every
// row is measured. It asserts correctness only, never speed.
func TestAPISmoke(t *testing.T) {
	coredns := testkit.Binary(t, "coredns")
	cfg, err := parseFlags([]string{"-quick", "-bin", filepath.Dir(coredns), "-out", "", "-parts", "api", "-duration", "500ms", "-changes", "5"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, problems, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("problem: %s", p)
	}
	var sec *Section
	for _, s := range rep.Sections {
		if strings.HasPrefix(s.Title, "HTTP API") {
			sec = s
		}
	}
	if sec == nil {
		t.Fatalf("no HTTP API section: %+v", rep.Sections)
	}
	if len(sec.Rows) != 5 {
		t.Errorf("%d rows, want requests/s, wake-up and DNS alone, steady and saturated: %v", len(sec.Rows), sec.Rows)
	}
	for _, row := range sec.Rows {
		for _, cell := range row {
			if strings.HasPrefix(cell, "not measured") {
				t.Errorf("row %q: %s", row[0], cell)
			}
		}
	}
	if len(sec.Summary) != 1 {
		t.Errorf("summary %v, want one line", sec.Summary)
	}
}
