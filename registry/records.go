package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
)

// PublicNetwork is the default network: the addresses every client may be
// given. Any other network name is an overlay declared in the DNS config.
const PublicNetwork = "public"

// MaxValueSize bounds a record's encoded size. Readers skip larger values
// unread, so one huge value cannot cost a reader memory or time.
const MaxValueSize = 64 << 10

// Limits on what one record may hold, so a record always fits a DNS answer
// budget and a reader's memory.
const (
	MaxNetworks      = 32
	MaxAddrsPerNet   = 64
	MaxPortsPerEntry = 64
)

// ErrBadRecord is wrapped by every record validation or decoding failure.
var ErrBadRecord = errors.New("registry: bad record")

// Addrs maps a network name to the addresses on that network.
type Addrs map[string][]netip.Addr

// Host is the record at P/hosts/<host>/host: the host's addresses, by network.
type Host struct {
	Name  string `json:"name"`
	Addrs Addrs  `json:"addrs"`
}

// Port is one named port of an instance, served as SRV _<name>._<proto>.
type Port struct {
	Name  string `json:"name"`
	Port  int    `json:"port"`
	Proto string `json:"proto"`
}

// Instance is the record at P/hosts/<host>/services/<service>: a service
// present on a host. Addrs, when set, replaces the host's addresses for this
// instance.
type Instance struct {
	Service string `json:"service"`
	Host    string `json:"host"`
	Shard   string `json:"shard,omitempty"`
	Ports   []Port `json:"ports,omitempty"`
	Addrs   Addrs  `json:"addrs,omitempty"`

	// Health (registry/health.go): the state, since when (Unix seconds),
	// and for a critical instance why. An older agent writes none of them,
	// which reads as passing.
	State  State  `json:"state,omitempty"`
	Since  int64  `json:"since,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Validate checks every network name and address: networks are DNS labels,
// addresses pass CheckAddr.
func (a Addrs) Validate() error {
	if len(a) > MaxNetworks {
		return fmt.Errorf("%w: %d networks, at most %d allowed", ErrBadRecord, len(a), MaxNetworks)
	}
	for _, nw := range a.Networks() {
		if err := CheckName("network", nw); err != nil {
			return fmt.Errorf("%w: %w", ErrBadRecord, err)
		}
		addrs := a[nw]
		if len(addrs) > MaxAddrsPerNet {
			return fmt.Errorf("%w: network %s has %d addresses, at most %d allowed", ErrBadRecord, nw, len(addrs), MaxAddrsPerNet)
		}
		for _, ip := range addrs {
			if err := CheckAddr(ip); err != nil {
				return valueErrorf(ErrBadRecord, "network %s %s", nw, Problem(err))
			}
		}
	}
	return nil
}

// Networks returns the network names in sorted order.
func (a Addrs) Networks() []string {
	nws := make([]string, 0, len(a))
	for nw := range a {
		nws = append(nws, nw)
	}
	sort.Strings(nws)
	return nws
}

// Validate checks a port: a label name, a number in 1-65535, tcp or udp.
func (p Port) Validate() error {
	if err := CheckName("port", p.Name); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if err := CheckPortNumber(p.Port); err != nil {
		return valueErrorf(ErrBadRecord, "port %s number %s", p.Name, Problem(err))
	}
	if err := CheckProto(p.Proto); err != nil {
		return valueErrorf(ErrBadRecord, "port %s proto %s", p.Name, Problem(err))
	}
	return nil
}

// ValidatePorts checks the ports of one instance: at most MaxPortsPerEntry,
// each valid, and no name and proto twice (both would be served at the same
// SRV name).
func ValidatePorts(ports []Port) error {
	if len(ports) > MaxPortsPerEntry {
		return valueErrorf(ErrBadRecord, "%d ports, at most %d allowed", len(ports), MaxPortsPerEntry)
	}
	seen := make(map[string]bool, len(ports))
	for _, p := range ports {
		if err := p.Validate(); err != nil {
			return err
		}
		k := p.Name + "/" + p.Proto
		if seen[k] {
			return valueErrorf(ErrBadRecord, "port %s is listed twice", k)
		}
		seen[k] = true
	}
	return nil
}

// Validate checks a host record.
func (h *Host) Validate() error {
	if err := CheckName("host", h.Name); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if err := h.Addrs.Validate(); err != nil {
		return fmt.Errorf("host %s: %w", h.Name, err)
	}
	return nil
}

// Validate checks an instance record.
func (in *Instance) Validate() error {
	if err := CheckName("service", in.Service); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if err := CheckName("host", in.Host); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if in.Shard != "" {
		if err := CheckName("shard", in.Shard); err != nil {
			return fmt.Errorf("%w: %w", ErrBadRecord, err)
		}
	}
	if err := ValidatePorts(in.Ports); err != nil {
		return fmt.Errorf("instance %s on %s: %w", in.Service, in.Host, err)
	}
	if err := in.Addrs.Validate(); err != nil {
		return fmt.Errorf("instance %s on %s: %w", in.Service, in.Host, err)
	}
	if err := in.validateHealth(); err != nil {
		return fmt.Errorf("instance %s on %s: %w", in.Service, in.Host, err)
	}
	return nil
}

// EncodeHost validates h and returns its JSON value.
func EncodeHost(h *Host) ([]byte, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(h)
}

// EncodeInstance validates in and returns its JSON value.
func EncodeInstance(in *Instance) ([]byte, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(in)
}

// decodeStrict unmarshals a JSON object, refusing oversized values (unread,
// ReasonTooLarge) and trailing data. Unknown fields are allowed, so newer
// writers can add fields without older readers dropping their records.
func decodeStrict(value []byte, v any) error {
	if len(value) > MaxValueSize {
		return decodeError(ReasonTooLarge, fmt.Errorf("%w: value is %d bytes, at most %d allowed", ErrBadRecord, len(value), MaxValueSize))
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	if err := dec.Decode(v); err != nil {
		return decodeError(ReasonRecord, fmt.Errorf("%w: not a JSON record: %w", ErrBadRecord, err))
	}
	// Only white space may follow. (Decoder.More reports a stray ']' or
	// '}' as the end of input, so it cannot tell.)
	if rest := bytes.TrimSpace(value[dec.InputOffset():]); len(rest) > 0 {
		return decodeError(ReasonRecord, fmt.Errorf("%w: trailing data after the JSON record: %.20q", ErrBadRecord, rest))
	}
	return nil
}

// DecodeHost decodes and validates the value of key (which must be a KindHost
// key) and checks that the record names the same host as its key. Its errors
// carry a Reason (DecodeError).
func DecodeHost(key Key, value []byte) (*Host, error) {
	var h Host
	if err := decodeStrict(value, &h); err != nil {
		return nil, fmt.Errorf("host %s: %w", key.Host, err)
	}
	if err := h.Validate(); err != nil {
		return nil, decodeError(ReasonRecord, err)
	}
	if h.Name != key.Host {
		return nil, decodeError(ReasonMismatch, fmt.Errorf("%w: record names host %q but its key is host %q", ErrBadRecord, h.Name, key.Host))
	}
	return &h, nil
}

// DecodeInstance decodes and validates the value of key (which must be a
// KindInstance key) and checks that the record names the key's host and
// service. Its errors carry a Reason (DecodeError).
func DecodeInstance(key Key, value []byte) (*Instance, error) {
	var in Instance
	if err := decodeStrict(value, &in); err != nil {
		return nil, fmt.Errorf("instance %s on %s: %w", key.Service, key.Host, err)
	}
	if err := in.Validate(); err != nil {
		return nil, decodeError(ReasonRecord, err)
	}
	if in.Host != key.Host || in.Service != key.Service {
		return nil, decodeError(ReasonMismatch, fmt.Errorf("%w: record names %s on %s but its key is %s on %s", ErrBadRecord, in.Service, in.Host, key.Service, key.Host))
	}
	return &in, nil
}
