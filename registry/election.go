package registry

import (
	"fmt"
	"iter"
)

// DecodeCandidate decodes an election value: the candidate's host name, raw
// (concurrency.Election stores the campaign value as it is). Its errors carry
// ReasonCandidate (DecodeError).
func DecodeCandidate(value []byte) (string, error) {
	if len(value) > MaxLabel {
		return "", decodeError(ReasonCandidate, fmt.Errorf("%w: election value is %d bytes, longer than a host name", ErrBadRecord, len(value)))
	}
	host := string(value)
	if err := CheckName("host", host); err != nil {
		return "", decodeError(ReasonCandidate, fmt.Errorf("%w: election value: %w", ErrBadRecord, err))
	}
	return host, nil
}

// Candidate is one key of a service's election as a reader sees it.
type Candidate struct {
	Key string // the election key, P/elections/<service>/<lease-hex>
	// Host is the campaigning host, "" when the key's value is not a host
	// name; Err then says why.
	Host string
	Err  error
	// CreateRevision is the key's create revision: its place in the
	// election, and its term if it leads.
	CreateRevision int64
}

// NewCandidate reads an election key's value. A value that is not a host
// name still makes a candidate (with Err set): its key holds its place in
// etcd's election whatever it holds, so readers keep it for Leader.
func NewCandidate(key string, createRev int64, value []byte) Candidate {
	host, err := DecodeCandidate(value)
	return Candidate{Key: key, Host: host, Err: err, CreateRevision: createRev}
}

// Leader returns the master of one election: the candidate with the lowest
// create revision, as concurrency.Election decides, whose create revision is
// its term. ok is false when there is no candidate. A leading candidate with
// Err set is still the leader: the master cannot be named, and the next
// candidate is not promoted, because it is not master. Of candidates with the
// same create revision (keys written in one transaction), the first wins.
//
// The DNS plugin, the election package and the CLI all decide with this, so
// they name the same master at the same revision.
func Leader(cands iter.Seq[Candidate]) (lead Candidate, ok bool) {
	for c := range cands {
		if !ok || c.CreateRevision < lead.CreateRevision {
			lead, ok = c, true
		}
	}
	return lead, ok
}
