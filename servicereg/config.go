package servicereg

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rollcall/rollcall/internal/etcdconn"
	"github.com/rollcall/rollcall/registry"
)

// Defaults of the agent config (servicereg/README.md, "Config").
const (
	DefaultConfigPath = "/etc/servicereg/servicereg.yml"
	DefaultTTL        = 10 * time.Second
	SystemdSystem     = "system"
	SystemdUser       = "user"
	// ServicesDir is the folder beside the config file whose *.yml files each
	// hold a YAML list of more services.
	ServicesDir = "services.d"
)

// Config is the agent's configuration: one YAML file plus the services of
// services.d/*.yml beside it. LoadConfig fills it with defaults applied; a
// Config built in code is completed and checked by New (see Normalize).
type Config struct {
	// Path is the file the config was loaded from ("" when built in code).
	Path string `yaml:"-"`

	Host    string        `yaml:"host"`
	Etcd    EtcdConfig    `yaml:"etcd"`
	Prefix  string        `yaml:"prefix"`
	TTL     time.Duration `yaml:"ttl"`
	Systemd string        `yaml:"systemd"`
	// Networks sort detected addresses: an address goes to the first network
	// (in file order) one of whose CIDRs holds it, else to "public".
	Networks []Network `yaml:"networks"`
	// Addrs are explicit addresses per network; a network listed here takes
	// exactly these, and detected addresses of that network are dropped.
	Addrs    registry.Addrs `yaml:"addrs"`
	Services []Service      `yaml:"services"`
}

// EtcdConfig says how the agent reaches etcd.
type EtcdConfig struct {
	Endpoints []string `yaml:"endpoints"`
	Cert      string   `yaml:"cert,omitempty"`
	Key       string   `yaml:"key,omitempty"`
	CA        string   `yaml:"ca,omitempty"`
}

// Network is one named network and the CIDRs that make it up.
type Network struct {
	Name  string
	CIDRs []netip.Prefix
}

// Service is one service the agent registers while its unit is active.
type Service struct {
	Name string `yaml:"name"`
	// Unit is the systemd unit watched; default <name>.service.
	Unit  string          `yaml:"unit"`
	Ports []registry.Port `yaml:"ports,omitempty"`
	Shard string          `yaml:"shard,omitempty"`
	// MasterElection makes the agent campaign for <name>-master while the
	// service is present; OnMaster/OnStandby are argv run on each change.
	MasterElection bool     `yaml:"master_election,omitempty"`
	OnMaster       []string `yaml:"on_master,omitempty"`
	OnStandby      []string `yaml:"on_standby,omitempty"`

	// Source is where the service was defined ("file:line"), for messages.
	Source string `yaml:"-"`
}

// Etcdconn returns the etcd connection settings.
func (c *Config) Etcdconn() etcdconn.Config {
	return etcdconn.Config{Endpoints: c.Etcd.Endpoints, Cert: c.Etcd.Cert, Key: c.Etcd.Key, CA: c.Etcd.CA}
}

// Keys returns the key layout under the configured prefix.
func (c *Config) Keys() registry.Keys {
	k, err := registry.NewKeys(c.Prefix)
	if err != nil {
		// Normalize has checked the prefix; an unchecked Config is a bug.
		return registry.MustKeys(registry.DefaultPrefix)
	}
	return k
}

// Normalize fills in defaults (host name, endpoints, prefix, TTL, systemd,
// units) and checks every value, returning all problems at once. LoadConfig
// has done it already; New does it for configs built in code.
func (c *Config) Normalize() error {
	var errs []error
	add := func(path string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
		}
	}
	if c.Host == "" {
		h, err := DefaultHost()
		add("host", err)
		c.Host = h
	} else {
		add("host", checkLabel("host", c.Host))
	}
	if len(c.Etcd.Endpoints) == 0 {
		c.Etcd.Endpoints = []string{etcdconn.DefaultEndpoint}
	}
	for i, ep := range c.Etcd.Endpoints {
		add(fmt.Sprintf("etcd.endpoints[%d]", i), checkEndpoint(ep))
	}
	add("etcd", checkTLSFiles(c.Etcd))
	if c.Prefix == "" {
		c.Prefix = registry.DefaultPrefix
	}
	add("prefix", checkPrefix(c.Prefix))
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	add("ttl", checkTTL(c.TTL))
	if c.Systemd == "" {
		c.Systemd = SystemdSystem
	}
	add("systemd", checkSystemd(c.Systemd))
	seenNet := map[string]bool{}
	for i, nw := range c.Networks {
		add(fmt.Sprintf("networks[%d]", i), checkLabel("network", nw.Name))
		if seenNet[nw.Name] {
			add("networks."+nw.Name, errors.New("network is listed twice"))
		}
		seenNet[nw.Name] = true
		for j, p := range nw.CIDRs {
			if !p.IsValid() || p != p.Masked() {
				add(fmt.Sprintf("networks.%s[%d]", nw.Name, j), fmt.Errorf("%s is not a network address (host bits set?)", p))
			}
		}
	}
	if n := len(c.Networks) + len(c.Addrs) + 1; n > registry.MaxNetworks {
		add("networks", fmt.Errorf("networks and addrs name up to %d networks (with public); a host record holds at most %d", n, registry.MaxNetworks))
	}
	for _, nw := range c.Addrs.Networks() {
		add("addrs", checkLabel("network", nw))
		if len(c.Addrs[nw]) > registry.MaxAddrsPerNet {
			add("addrs."+nw, fmt.Errorf("%d addresses, at most %d per network", len(c.Addrs[nw]), registry.MaxAddrsPerNet))
		}
		for j, a := range c.Addrs[nw] {
			add(fmt.Sprintf("addrs.%s[%d]", nw, j), checkAddr(a))
		}
	}
	seen := map[string]bool{}
	for i := range c.Services {
		s := &c.Services[i]
		where := fmt.Sprintf("services[%d]", i)
		if s.Source != "" {
			where = s.Source
		}
		if s.Unit == "" {
			s.Unit = s.Name + ".service"
		}
		add(where, s.check())
		if seen[s.Name] {
			add(where, fmt.Errorf("service %q is defined twice: service names must be unique", s.Name))
		}
		seen[s.Name] = true
	}
	return errors.Join(errs...)
}

// check validates one service after its defaults are set.
func (s *Service) check() error {
	var errs []error
	if err := checkLabel("service", s.Name); err != nil {
		errs = append(errs, fmt.Errorf("name: %w", err))
	}
	if err := checkUnit(s.Unit); err != nil {
		errs = append(errs, fmt.Errorf("unit: %w", err))
	}
	if s.Shard != "" {
		if err := checkLabel("shard", s.Shard); err != nil {
			errs = append(errs, fmt.Errorf("shard: %w", err))
		}
	}
	if len(s.Ports) > registry.MaxPortsPerEntry {
		errs = append(errs, fmt.Errorf("ports: %d ports, at most %d", len(s.Ports), registry.MaxPortsPerEntry))
	}
	seen := map[string]bool{}
	for i, p := range s.Ports {
		if err := checkPort(p); err != nil {
			errs = append(errs, fmt.Errorf("ports[%d]: %w", i, err))
		}
		if seen[p.Name+"/"+p.Proto] {
			errs = append(errs, fmt.Errorf("ports[%d]: port %s/%s is listed twice", i, p.Name, p.Proto))
		}
		seen[p.Name+"/"+p.Proto] = true
	}
	if err := checkHook(s.OnMaster, s.MasterElection); err != nil {
		errs = append(errs, fmt.Errorf("on_master: %w", err))
	}
	if err := checkHook(s.OnStandby, s.MasterElection); err != nil {
		errs = append(errs, fmt.Errorf("on_standby: %w", err))
	}
	return errors.Join(errs...)
}

// DefaultHost returns the machine's short host name, lower-cased, checked to
// be a DNS label.
func DefaultHost() (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("read the system host name: %w; set host: in the config", err)
	}
	short, _, _ := strings.Cut(h, ".")
	short = strings.ToLower(short)
	if err := checkLabel("host", short); err != nil {
		return "", fmt.Errorf("the system host name %q does not give a valid name (%w); set host: in the config", h, err)
	}
	return short, nil
}

// The checks below return errors that say what is allowed; the parser adds
// the file and line, Normalize the field path.

func checkLabel(what, s string) error {
	if registry.ValidName(s) {
		return nil
	}
	if s == "" {
		return fmt.Errorf("%s name is empty", what)
	}
	return fmt.Errorf("%s name %q must be a lower-case DNS label: a-z, 0-9 and '-', at most 63 characters, not starting or ending with '-'", what, s)
}

func checkEndpoint(ep string) error {
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("endpoint %q must be a URL like http://127.0.0.1:2379 or https://10.0.0.1:2379", ep)
	}
	return nil
}

// checkTLSFiles checks that cert, key and ca come together. Whether the
// files can be read is checked when the agent connects (etcdconn), so that
// example configs check out on machines without the certificates.
func checkTLSFiles(e EtcdConfig) error {
	n := 0
	for _, f := range []string{e.Cert, e.Key, e.CA} {
		if f != "" {
			n++
		}
	}
	if n != 0 && n != 3 {
		return errors.New("cert, key and ca go together: set all three for mTLS, or none")
	}
	return nil
}

func checkPrefix(p string) error {
	if _, err := registry.NewKeys(p); err != nil {
		return fmt.Errorf("prefix %q must start with '/' and name a folder, e.g. %s", p, registry.DefaultPrefix)
	}
	return nil
}

func checkTTL(d time.Duration) error {
	if d < time.Second || d%time.Second != 0 {
		return fmt.Errorf("ttl %v must be whole seconds, at least 1s (etcd leases count seconds), e.g. 10s", d)
	}
	if d > 24*time.Hour {
		return fmt.Errorf("ttl %v is longer than a day: a dead host would stay registered that long", d)
	}
	return nil
}

func checkSystemd(s string) error {
	if s != SystemdSystem && s != SystemdUser {
		return fmt.Errorf("systemd %q must be %q or %q", s, SystemdSystem, SystemdUser)
	}
	return nil
}

// unitSuffixes are the unit types whose ActiveState means "running".
var unitSuffixes = []string{".service", ".socket", ".target", ".timer", ".mount", ".path", ".scope", ".slice", ".swap", ".automount", ".device"}

func checkUnit(u string) error {
	if u == "" {
		return errors.New("unit is empty")
	}
	if len(u) > 255 {
		return fmt.Errorf("unit %.20q... is longer than 255 characters", u)
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(":-_.\\@", c) >= 0) {
			return fmt.Errorf("unit %q has the character %q, which systemd unit names cannot hold", u, c)
		}
	}
	for _, sfx := range unitSuffixes {
		if strings.HasSuffix(u, sfx) && len(u) > len(sfx) {
			return nil
		}
	}
	return fmt.Errorf("unit %q needs a unit type suffix such as .service", u)
}

func checkPort(p registry.Port) error {
	if err := checkLabel("port", p.Name); err != nil {
		return err
	}
	if p.Port < 1 || p.Port > 65535 {
		return fmt.Errorf("port %s: number %d is outside 1-65535", p.Name, p.Port)
	}
	if p.Proto != "tcp" && p.Proto != "udp" {
		return fmt.Errorf("port %s: proto %q must be tcp or udp", p.Name, p.Proto)
	}
	return nil
}

func checkHook(argv []string, election bool) error {
	if len(argv) == 0 {
		return nil
	}
	if !election {
		return errors.New("hooks run on master changes: set master_election: true, or drop the hook")
	}
	if argv[0] == "" {
		return errors.New("the command (first element) is empty")
	}
	return nil
}

func checkCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR such as 10.100.0.0/16 or fd00::/64", s)
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set: write %s", s, p.Masked())
	}
	return p, nil
}

func checkAddr(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return errors.New("address is empty")
	case a.Zone() != "":
		return fmt.Errorf("address %s has a zone, which other hosts cannot use", a)
	case a.IsUnspecified():
		return fmt.Errorf("address %s is unspecified", a)
	case a.Is4In6():
		return fmt.Errorf("address %s is IPv4-mapped IPv6: write %s", a, a.Unmap())
	}
	return nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	return a, checkAddr(a)
}

// YAML returns the config as YAML with every default spelled out: what
// `servicereg -check` prints.
func (c *Config) YAML() ([]byte, error) {
	type port struct {
		Name  string `yaml:"name"`
		Port  int    `yaml:"port"`
		Proto string `yaml:"proto"`
	}
	type service struct {
		Name           string   `yaml:"name"`
		Unit           string   `yaml:"unit"`
		Ports          []port   `yaml:"ports,omitempty"`
		Shard          string   `yaml:"shard,omitempty"`
		MasterElection bool     `yaml:"master_election,omitempty"`
		OnMaster       []string `yaml:"on_master,omitempty"`
		OnStandby      []string `yaml:"on_standby,omitempty"`
	}
	networks := &yaml.Node{Kind: yaml.MappingNode}
	for _, nw := range c.Networks {
		var cidrs []string
		for _, p := range nw.CIDRs {
			cidrs = append(cidrs, p.String())
		}
		v := &yaml.Node{}
		if err := v.Encode(cidrs); err != nil {
			return nil, err
		}
		v.Style = yaml.FlowStyle
		networks.Content = append(networks.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: nw.Name}, v)
	}
	addrs := map[string][]string{}
	for nw, as := range c.Addrs {
		for _, a := range as {
			addrs[nw] = append(addrs[nw], a.String())
		}
	}
	var svcs []service
	for _, s := range c.Services {
		out := service{Name: s.Name, Unit: s.Unit, Shard: s.Shard, MasterElection: s.MasterElection, OnMaster: s.OnMaster, OnStandby: s.OnStandby}
		for _, p := range s.Ports {
			out.Ports = append(out.Ports, port(p))
		}
		svcs = append(svcs, out)
	}
	out := struct {
		Host     string              `yaml:"host"`
		Etcd     EtcdConfig          `yaml:"etcd"`
		Prefix   string              `yaml:"prefix"`
		TTL      string              `yaml:"ttl"`
		Systemd  string              `yaml:"systemd"`
		Networks *yaml.Node          `yaml:"networks"`
		Addrs    map[string][]string `yaml:"addrs"`
		Services []service           `yaml:"services"`
	}{c.Host, c.Etcd, c.Prefix, c.TTL.String(), c.Systemd, networks, addrs, svcs}
	var doc yaml.Node
	if err := doc.Encode(out); err != nil {
		return nil, fmt.Errorf("effective config: %w", err)
	}
	// Say where each service came from: services.d files make that useful.
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value != "services" {
			continue
		}
		for j, item := range doc.Content[i+1].Content {
			if j < len(c.Services) && c.Services[j].Source != "" {
				item.HeadComment = "from " + c.Services[j].Source
			}
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("effective config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("effective config: %w", err)
	}
	return buf.Bytes(), nil
}
