package health

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rollcall/rollcall/registry"
)

// Result is one run of one check.
type Result struct {
	State    registry.State `json:"state"`       // passing, warning or critical
	Output   string         `json:"output"`      // excerpt (bounded), the check's own words
	Duration time.Duration  `json:"duration_ns"` // how long the run took
	At       time.Time      `json:"at"`          // when the run started
}

// CheckStatus is one check as /status shows it.
type CheckStatus struct {
	Check       string         `json:"check"`    // Spec.String()
	Source      string         `json:"source"`   // file:line
	State       registry.State `json:"state"`    // after rise/fall
	Last        *Result        `json:"last"`     // nil before the first run
	Passes      int            `json:"passes"`   // consecutive non-critical results
	Failures    int            `json:"failures"` // consecutive critical results
	Transitions int            `json:"transitions"`
	Changed     time.Time      `json:"changed"` // last transition (or when the check was set)
}

// ServiceStatus is one service's checks as /status shows them.
type ServiceStatus struct {
	Service string         `json:"service"`
	State   registry.State `json:"state"`            // worst over its checks
	Reason  string         `json:"reason,omitempty"` // when critical: which check and why, one line, <= registry.MaxReasonLen bytes
	Since   time.Time      `json:"since"`            // last change of State
	Checks  []CheckStatus  `json:"checks"`
}

// worse reports whether a is worse than b: critical, then warning, then
// passing.
func worse(a, b registry.State) bool { return rank(a) > rank(b) }

// rank orders states for worse, and is the value of the state gauge.
func rank(s registry.State) int {
	switch s.Effective() {
	case registry.StatePassing:
		return 0
	case registry.StateWarning:
		return 1
	}
	return 2
}

// MaxOutput bounds Result.Output in bytes: enough for a status line or an
// error message, small enough that 200 checks' outputs in /status are a
// page, not a dump.
const MaxOutput = 512

// excerpt bounds a check's output for Result.Output: valid UTF-8, at most
// MaxOutput bytes, without surrounding blank space. Lines are kept: /status
// shows the output as the check wrote it.
func excerpt(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.TrimSpace(truncate(s, MaxOutput))
}

// truncate cuts s to at most n bytes at a rune boundary, marking the cut
// with an ellipsis.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const more = "…"
	cut := n - len(more)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}
