package health

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kind is the kind of a check: how it probes.
type Kind string

// The kinds of check.
const (
	KindHTTP Kind = "http" // GET a URL: 2xx passing, 429 warning, anything else critical
	KindTCP  Kind = "tcp"  // connect: connected is passing
	KindGRPC Kind = "grpc" // grpc.health.v1 Check: SERVING is passing
	KindExec Kind = "exec" // run a program: exit 0 passing, 1 warning, anything else critical
)

// Kinds lists the kinds, in the order messages name them.
var Kinds = []Kind{KindHTTP, KindTCP, KindGRPC, KindExec}

// Defaults of a check's timing. The default timeout leaves a slow but
// healthy service over half an interval before it counts as failed; rise 2
// keeps one lucky answer from putting a starting instance in service; fall
// 3 rides out a single slow answer or a dropped packet.
const (
	DefaultInterval      = 5 * time.Second
	DefaultTimeout       = 2 * time.Second
	DefaultRise          = 2
	DefaultFall          = 3
	DefaultMaxConcurrent = 16
)

// Bounds Validate enforces.
const (
	// MinInterval is the shortest interval: a check more often than ten
	// times a second is a load test of the service, not a health check,
	// and the jitter and timeout of shorter ones are below timer precision
	// under load.
	MinInterval = 100 * time.Millisecond
	// MaxInterval is the longest: a check rarer than this cannot tell an
	// outage in any useful time.
	MaxInterval = time.Hour
	// MaxRiseFall bounds rise and fall: more in a row than this at even
	// the shortest interval is a mistake, not a policy.
	MaxRiseFall = 100
)

// Spec is one configured check.
type Spec struct {
	Kind     Kind
	Target   string        // http: URL; tcp: IP:port; grpc: IP:port[/service]
	Argv     []string      // exec
	Interval time.Duration // default 5s
	Timeout  time.Duration // default 2s; must be < Interval
	Rise     int           // default 2
	Fall     int           // default 3
	Source   string        // "file:line" where it was defined, for messages
}

// SetDefaults fills the timing fields left zero.
func (s *Spec) SetDefaults() {
	if s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
		// A short interval with the default timeout would be refused;
		// the default then follows the interval (half of it).
		if s.Interval > 0 && s.Timeout >= s.Interval {
			s.Timeout = s.Interval / 2
		}
	}
	if s.Rise == 0 {
		s.Rise = DefaultRise
	}
	if s.Fall == 0 {
		s.Fall = DefaultFall
	}
}

// FieldError is a problem with one field of a Spec. Field is the field
// as the config spells it ("http", "tcp", "grpc", "exec" for the target;
// "interval", "timeout", "rise", "fall"), so that a parser can point at its
// line.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Validate checks a Spec whose defaults are set. Its error is a
// *FieldError whose words say what to write instead; it does not name the
// Source (the caller adds file:line).
func (s Spec) Validate() error {
	if err := s.validateTarget(); err != nil {
		return &FieldError{Field: string(s.Kind), Err: err}
	}
	if field, err := s.validateTiming(); err != nil {
		return &FieldError{Field: field, Err: err}
	}
	return nil
}

func (s Spec) validateTarget() error {
	switch s.Kind {
	case KindHTTP:
		return checkURL(s.Target)
	case KindTCP:
		_, err := checkHostPort(KindTCP, s.Target)
		return err
	case KindGRPC:
		addr, svc, _ := strings.Cut(s.Target, "/")
		if _, err := checkHostPort(KindGRPC, addr); err != nil {
			return err
		}
		if strings.ContainsAny(svc, " \t\r\n/") {
			return fmt.Errorf("grpc service name %q holds a space or a slash: write IP:port/package.Service, such as 127.0.0.1:9090/grpc.health.v1.Health", svc)
		}
	case KindExec:
		if len(s.Argv) == 0 || s.Argv[0] == "" {
			return fmt.Errorf(`exec needs a program: write exec: ["/usr/local/bin/check-db"], a list of the program and its arguments (no shell runs it)`)
		}
		if !strings.Contains(s.Argv[0], "/") {
			return fmt.Errorf(`exec program %q is a bare name: write its path, such as /usr/bin/%s; checks do not search PATH`, s.Argv[0], s.Argv[0])
		}
		for _, a := range s.Argv {
			if strings.ContainsRune(a, 0) {
				return fmt.Errorf("exec argument %q holds a NUL byte, which no program can receive", a)
			}
		}
	default:
		return fmt.Errorf("unknown check kind %q: write one of %s", s.Kind, kindList())
	}
	return nil
}

// validateTiming checks interval, timeout, rise and fall, and says which
// is wrong.
func (s Spec) validateTiming() (field string, err error) {
	if s.Interval < MinInterval || s.Interval > MaxInterval {
		return "interval", fmt.Errorf("interval %s is out of range: write a duration from %s to %s, such as interval: %s", s.Interval, MinInterval, MaxInterval, DefaultInterval)
	}
	if s.Timeout <= 0 {
		return "timeout", fmt.Errorf("timeout %s must be positive: write timeout: %s", s.Timeout, suggestTimeout(s.Interval))
	}
	if s.Timeout >= s.Interval {
		return "timeout", fmt.Errorf("timeout %s must be shorter than interval %s: write timeout: %s or interval: %s", s.Timeout, s.Interval, suggestTimeout(s.Interval), 2*s.Timeout)
	}
	if s.Rise < 1 || s.Rise > MaxRiseFall {
		return "rise", fmt.Errorf("rise %d is out of range: write a count from 1 to %d (passes in a row to become passing), such as rise: %d", s.Rise, MaxRiseFall, DefaultRise)
	}
	if s.Fall < 1 || s.Fall > MaxRiseFall {
		return "fall", fmt.Errorf("fall %d is out of range: write a count from 1 to %d (failures in a row to become critical), such as fall: %d", s.Fall, MaxRiseFall, DefaultFall)
	}
	return "", nil
}

// suggestTimeout is a timeout to suggest for an interval: the default if
// it fits, else half the interval.
func suggestTimeout(interval time.Duration) time.Duration {
	if DefaultTimeout < interval {
		return DefaultTimeout
	}
	return interval / 2
}

func kindList() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

const noNames = "checks never resolve names, so a check cannot depend on rollcall's own DNS"

// checkURL checks an http check's URL: http or https, an IP literal host,
// a port if any in range, no user info.
func checkURL(raw string) error {
	const example = "http://127.0.0.1:8080/ready"
	if !strings.HasPrefix(raw, "http://") && !strings.HasPrefix(raw, "https://") {
		return fmt.Errorf("http check URL %q must start with http:// or https://: write a URL such as %s", raw, example)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("http check URL %q does not parse: write a URL such as %s", raw, example)
	}
	if u.User != nil {
		return fmt.Errorf("http check URL %q holds a user and password: a check sends no credentials; write a URL such as %s", raw, example)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("http check URL %q has no host: write a URL such as %s", raw, example)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Errorf("http check URL %q names host %q: write an IP address such as 127.0.0.1: %s", raw, host, noNames)
	}
	if p := u.Port(); p != "" {
		if _, err := parsePort(p); err != nil {
			return fmt.Errorf("http check URL %q: %w", raw, err)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return fmt.Errorf("http check URL %q has an empty port: write a port from 1 to 65535 after the colon, or no colon", raw)
	}
	return nil
}

// checkHostPort checks an IP:port target ([v6]:port for IPv6).
func checkHostPort(kind Kind, s string) (netip.AddrPort, error) {
	example := "127.0.0.1:8080"
	if kind == KindGRPC {
		example = "127.0.0.1:9090"
	}
	host, port, err := splitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%s check target %q is not IP:port: write an address such as %s ([::1]:8080 for IPv6)", kind, s, example)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%s check target %q names host %q: write an IP address such as 127.0.0.1: %s", kind, s, host, noNames)
	}
	if ip.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("%s check target %q has an IPv6 zone: write an address without %%zone", kind, s)
	}
	p, err := parsePort(port)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%s check target %q: %w", kind, s, err)
	}
	return netip.AddrPortFrom(ip, p), nil
}

// splitHostPort splits host:port, where an IPv6 host is bracketed.
func splitHostPort(s string) (host, port string, err error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", "", fmt.Errorf("no port")
	}
	host, port = s[:i], s[i+1:]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	} else if strings.Contains(host, ":") {
		return "", "", fmt.Errorf("IPv6 address without brackets")
	}
	return host, port, nil
}

func parsePort(p string) (uint16, error) {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 || strings.HasPrefix(p, "+") {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535: write the port the service listens on", p)
	}
	return uint16(n), nil
}

// String names the check in messages, /status and reasons: its kind and
// target, such as "http http://127.0.0.1:8080/ready" or "exec
// /usr/local/bin/check-db --quick".
func (s Spec) String() string {
	if s.Kind == KindExec {
		return string(s.Kind) + " " + strings.Join(s.Argv, " ")
	}
	return string(s.Kind) + " " + s.Target
}

// Equal reports whether o is the same check as s, Source aside: a reload
// that keeps a check keeps its state, counters and schedule.
func (s Spec) Equal(o Spec) bool {
	return s.Kind == o.Kind && s.Target == o.Target && slices.Equal(s.Argv, o.Argv) &&
		s.Interval == o.Interval && s.Timeout == o.Timeout && s.Rise == o.Rise && s.Fall == o.Fall
}
