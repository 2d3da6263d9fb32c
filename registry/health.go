package registry

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// State is an instance's health as its agent last wrote it (docs/DESIGN.md,
// "Health"). The empty State is what an agent from before health checks
// writes, and it means passing: readers call Effective, never compare "".
type State string

// The states an agent writes.
const (
	StatePassing  State = "passing"  // every check passes (or there are none)
	StateWarning  State = "warning"  // serving, but some check warns: less traffic (SRV weight 1)
	StateCritical State = "critical" // registered but not served, unless the service fails open
	StateDraining State = "draining" // taken out on purpose before a stop; never served, not even failing open
)

// MaxReasonLen bounds a critical instance's reason and a maintenance
// reason, in bytes: a reason is a hint for a person, not a check's output.
const MaxReasonLen = 256

// SRV weights by state: a warning instance still takes traffic, a tenth of
// a passing one's.
const (
	WeightPassing = 10
	WeightWarning = 1
)

// Effective returns the state a reader acts on: the empty state (an older
// agent's record) is passing.
func (s State) Effective() State {
	if s == "" {
		return StatePassing
	}
	return s
}

// InService reports whether an instance in this state is served under its
// service's names and may campaign for master: passing and warning. It is
// the one rule the DNS plugin and the agent's elections share.
func (s State) InService() bool {
	switch s.Effective() {
	case StatePassing, StateWarning:
		return true
	}
	return false
}

// Weight returns the SRV weight of an instance in service in this state.
func (s State) Weight() uint16 {
	if s.Effective() == StateWarning {
		return WeightWarning
	}
	return WeightPassing
}

// CheckState checks a state as a writer would write it: empty (no health
// information) or one of the four states.
func CheckState(s State) error {
	switch s {
	case "", StatePassing, StateWarning, StateCritical, StateDraining:
		return nil
	}
	return valueErrorf(ErrBadRecord, "state %.40q must be one of %s, %s, %s, %s", string(s), StatePassing, StateWarning, StateCritical, StateDraining)
}

// checkText checks a short free text (a reason, a who): at most
// MaxReasonLen bytes of UTF-8 without control characters, so that it
// prints on one line of a terminal or a log.
func checkText(what, s string) error {
	if len(s) > MaxReasonLen {
		return valueErrorf(ErrBadRecord, "%s is %d bytes, at most %d allowed", what, len(s), MaxReasonLen)
	}
	if !utf8.ValidString(s) {
		return valueErrorf(ErrBadRecord, "%s is not UTF-8", what)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return valueErrorf(ErrBadRecord, "%s holds the control character %q: write one line of text", what, r)
		}
	}
	return nil
}

// ReasonText makes any text a valid reason: one line of printable UTF-8
// (line breaks, tabs and control characters become spaces, runs of blanks
// one space) of at most MaxReasonLen bytes, cut at a rune with an
// ellipsis. A writer that puts a check's output into a record uses it, so
// that a record never fails its own validation on a check's words.
func ReasonText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	s = b.String()
	if len(s) <= MaxReasonLen {
		return s
	}
	const more = "…"
	cut := MaxReasonLen - len(more)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}

// validateHealth checks an instance's state, since and reason: since is
// Unix seconds (not negative), and only a critical instance carries a reason.
func (in *Instance) validateHealth() error {
	if err := CheckState(in.State); err != nil {
		return err
	}
	if in.Since < 0 {
		return valueErrorf(ErrBadRecord, "since %d is negative: it is Unix seconds", in.Since)
	}
	if in.Reason != "" {
		if in.State != StateCritical {
			return valueErrorf(ErrBadRecord, "reason is set but the state is %q: only a critical instance carries a reason", in.State.Effective())
		}
		if err := checkText("reason", in.Reason); err != nil {
			return err
		}
	}
	return nil
}

// Maintenance is the record at P/maintenance/<host> (the whole host) or
// P/maintenance/<host>/<service> (one instance): an operator took it out
// of service. Operators write it (`rollcall maint`); hosts' credentials
// cannot (deploy/rbac.sh grants them no write there).
type Maintenance struct {
	Reason string `json:"reason"`
	Who    string `json:"who,omitempty"`
	// Until is when it ends by itself, Unix seconds; 0 means until it is
	// deleted. An expired record counts as absent.
	Until int64 `json:"until,omitempty"`
}

// Validate checks a maintenance record: a reason is required (the next
// person on call needs to know why), who and reason are short one-line
// texts, until is not negative.
func (m *Maintenance) Validate() error {
	if m.Reason == "" {
		return valueErrorf(ErrBadRecord, "maintenance needs a reason: say why, for whoever looks next")
	}
	if err := checkText("reason", m.Reason); err != nil {
		return err
	}
	if err := checkText("who", m.Who); err != nil {
		return err
	}
	if m.Until < 0 {
		return valueErrorf(ErrBadRecord, "until %d is negative: it is Unix seconds, or 0 for no end", m.Until)
	}
	return nil
}

// Active reports whether the maintenance holds at now: it has no end, or
// its end is still to come.
func (m *Maintenance) Active(now time.Time) bool {
	return m.Until == 0 || now.Unix() < m.Until
}

// EncodeMaintenance validates m and returns its JSON value.
func EncodeMaintenance(m *Maintenance) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// DecodeMaintenance decodes and validates the value of a KindMaintenance
// key. Its errors carry a Reason (DecodeError).
func DecodeMaintenance(key Key, value []byte) (*Maintenance, error) {
	var m Maintenance
	where := "maintenance of " + key.Host
	if key.Service != "" {
		where = fmt.Sprintf("maintenance of %s on %s", key.Service, key.Host)
	}
	if err := decodeStrict(value, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if err := m.Validate(); err != nil {
		return nil, decodeError(ReasonRecord, fmt.Errorf("%s: %w", where, err))
	}
	return &m, nil
}
