package registry

import "errors"

// MaxLabel is the longest DNS label, and so the longest service, host, shard,
// network or port name.
const MaxLabel = 63

// ErrBadName is wrapped by every name validation failure.
var ErrBadName = errors.New("registry: bad name")

// ValidName reports whether s is a lower-case DNS label:
// [a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?. Services, hosts, shards, networks and
// port names all use it, so every name can appear in a DNS name as it is.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxLabel {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i != 0 && i != len(s)-1:
		default:
			return false
		}
	}
	return true
}

// CheckName returns nil for a valid name and otherwise a *ValueError (class
// ErrBadName) that says what kind of name (what: "service", "host", ...) was
// wrong and what is allowed.
func CheckName(what, s string) error {
	if ValidName(s) {
		return nil
	}
	switch {
	case s == "":
		return valueErrorf(ErrBadName, "%s name is empty", what)
	case len(s) > MaxLabel:
		return valueErrorf(ErrBadName, "%s name %.20q... is %d characters, at most %d are allowed", what, s, len(s), MaxLabel)
	default:
		return valueErrorf(ErrBadName, "%s name %q must be a lower-case DNS label: a-z, 0-9 and '-', not starting or ending with '-'", what, s)
	}
}
