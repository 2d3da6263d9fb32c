package registry

import (
	"errors"
	"fmt"
)

// A ValueError is one value that breaks the schema: a name, a port number, a
// protocol, an address, a CIDR or a prefix. Problem says what is wrong and
// what to write instead. Error puts the class first ("registry: bad name:
// ..."), so that a log line says which check failed; a caller that says
// where the value was itself, such as the agent's config parser with its
// file:line, prints Problem alone (see Problem).
type ValueError struct {
	Class   error // ErrBadName, ErrBadRecord, ErrBadKey or ErrBadNetwork: what errors.Is matches
	Problem string
}

func (e *ValueError) Error() string { return e.Class.Error() + ": " + e.Problem }
func (e *ValueError) Unwrap() error { return e.Class }

func valueErrorf(class error, format string, args ...any) error {
	return &ValueError{Class: class, Problem: fmt.Sprintf(format, args...)}
}

// Problem returns what the first ValueError in err's chain says, without its
// class, or err's whole message when there is none. It is meant for the
// error of one check (CheckName, CheckAddr, ParseCIDR, Port.Validate...):
// of a longer chain it keeps only that ValueError's words.
func Problem(err error) string {
	var ve *ValueError
	if errors.As(err, &ve) {
		return ve.Problem
	}
	return err.Error()
}

// Reason says why a reader skipped a key or value. The values are stable:
// the DNS plugin counts skipped keys by them
// (coredns_rollcall_decode_errors_total{reason}), so a new failure gets a
// reason of its own rather than a new meaning for an old one.
type Reason string

// The reasons.
const (
	ReasonKey       Reason = "key"       // key outside the layout, at an unexpected depth, or with a bad name
	ReasonTooLarge  Reason = "too_large" // value over MaxValueSize, skipped unread
	ReasonRecord    Reason = "record"    // not JSON, wrong types, invalid names or addresses
	ReasonMismatch  Reason = "mismatch"  // record names another host or service than its key
	ReasonCandidate Reason = "candidate" // election value is not a host name
)

// A DecodeError is why Keys.Parse or a Decode function refused a key or
// value. Readers count it by Reason, which errors.As finds however the error
// was wrapped since; the message is Err's.
type DecodeError struct {
	Reason Reason
	Err    error
}

func (e *DecodeError) Error() string { return e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

// ReasonOf returns the reason of the DecodeError in err's chain, and false
// when there is none (err did not come from Parse or a Decode function).
func ReasonOf(err error) (Reason, bool) {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Reason, true
	}
	return "", false
}

func decodeError(reason Reason, err error) error {
	return &DecodeError{Reason: reason, Err: err}
}
