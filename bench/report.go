package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Section is one part's results: a table and notes.
type Section struct {
	Title  string
	Intro  []string // paragraphs before the table
	Header []string
	Rows   [][]string
	Notes  []string // paragraphs after the table
	Code   string   // a preformatted block (a profile), after the notes
	Sub    []*Section
	// Summary lines go to the report's summary at the top.
	Summary []string
}

// Row appends a row.
func (s *Section) Row(cells ...string) { s.Rows = append(s.Rows, cells) }

// Note appends a paragraph after the table.
func (s *Section) Note(format string, args ...any) {
	s.Notes = append(s.Notes, fmt.Sprintf(format, args...))
}

// Report is BENCHMARKS.md.
type Report struct {
	Title    string
	Preamble []string
	Sections []*Section
}

// Write renders the report as Markdown.
func (r *Report) Write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", r.Title)
	for _, p := range r.Preamble {
		b.WriteString(p + "\n\n")
	}
	for _, s := range r.Sections {
		writeSection(&b, s, "##")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeSection renders one section at a heading level ("##"), then its
// subsections one level deeper.
func writeSection(b *strings.Builder, s *Section, level string) {
	fmt.Fprintf(b, "%s %s\n\n", level, s.Title)
	for _, p := range s.Intro {
		b.WriteString(p + "\n\n")
	}
	if len(s.Header) > 0 {
		b.WriteString("| " + strings.Join(s.Header, " | ") + " |\n")
		b.WriteString("|" + strings.Repeat(" --- |", len(s.Header)) + "\n")
		for _, row := range s.Rows {
			cells := make([]string, len(s.Header))
			copy(cells, row)
			for i, c := range cells {
				cells[i] = strings.ReplaceAll(c, "|", "\\|")
			}
			b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
		}
		b.WriteString("\n")
	}
	for _, p := range s.Notes {
		b.WriteString(p + "\n\n")
	}
	if s.Code != "" {
		b.WriteString("```\n" + strings.TrimRight(s.Code, "\n") + "\n```\n\n")
	}
	for _, sub := range s.Sub {
		writeSection(b, sub, level+"#")
	}
}

// fmtDur formats a latency for a table: µs below 1 ms, ms with two decimals
// below 10 s.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

// fmtQPS formats a rate with thousands grouped by a thin space.
func fmtQPS(q float64) string {
	n := int64(q + 0.5)
	s := fmt.Sprint(n)
	var out []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	return string(out)
}

// fmtRatio formats a ratio like "1.23x".
func fmtRatio(r float64) string {
	if r == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", r)
}

// fmtBytes formats a byte count in MiB.
func fmtBytes(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// notMeasured is the cell of a row a part could not fill, with why.
func notMeasured(why string) string { return "not measured: " + why }
