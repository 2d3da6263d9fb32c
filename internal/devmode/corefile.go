package devmode

import (
	"fmt"
	"strings"
)

// Corefile returns the Corefile `rollcall dev` serves: one server block for
// the zone on the DNS address, with the rollcall plugin reading the embedded
// etcd and serving its HTTP API and status page (unless off). It has no
// cache: rollcall answers from memory (docs/DESIGN.md, "Serving and
// freshness").
func (c Config) Corefile() string {
	ip, port := splitDNSAddr(c.DNSAddr)
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d {\n", c.Zone, port)
	fmt.Fprintf(&b, "    bind %s\n", ip)
	b.WriteString("    errors\n")
	if c.LogQueries {
		b.WriteString("    log\n")
	}
	fmt.Fprintf(&b, "    rollcall %s {\n", c.Zone)
	fmt.Fprintf(&b, "        endpoint %s\n", c.ClientURL)
	fmt.Fprintf(&b, "        prefix %s\n", c.Prefix)
	b.WriteString("        ttl 5\n")
	if c.HTTPAddr != HTTPOff {
		fmt.Fprintf(&b, "        http %s\n", c.HTTPAddr)
	}
	b.WriteString("    }\n")
	b.WriteString("}\n")
	return b.String()
}

// Banner is what `rollcall dev` prints once everything is up: the status
// page's URL and the commands to try, spelled for the addresses in use.
func (c Config) Banner(host string) string {
	ip, port := splitDNSAddr(c.DNSAddr)
	name := DemoService + "." + strings.TrimSuffix(c.Zone, ".")
	ls := c.Self + " ls"
	if c.ClientURL != DefaultClientURL {
		ls += " -endpoints " + c.ClientURL
	}
	if c.Prefix != "/rollcall" {
		ls += " -prefix " + c.Prefix
	}
	var b strings.Builder
	fmt.Fprintf(&b, "rollcall dev is up: etcd at %s, DNS for %s at %s, agent on host %q (data in %s).\n",
		c.ClientURL, c.Zone, c.DNSAddr, host, c.DataDir)
	if c.HTTPAddr != HTTPOff {
		fmt.Fprintf(&b, "Status page: %s\n", c.StatusURL())
	}
	b.WriteString("Try:\n\n")
	fmt.Fprintf(&b, "  dig @%s -p %d %s\n", ip, port, name)
	fmt.Fprintf(&b, "  etcdctl --endpoints %s get --prefix %s/\n", c.ClientURL, strings.TrimRight(c.Prefix, "/"))
	fmt.Fprintf(&b, "  %s\n", ls)
	if c.HTTPAddr != HTTPOff {
		fmt.Fprintf(&b, "  curl '%sv1/services/%s?pretty'\n", c.StatusURL(), DemoService)
	}
	b.WriteString("\n")
	b.WriteString("Ctrl-C stops everything.\n")
	return b.String()
}

// StatusURL is the status page's URL, with the final slash ("" when HTTP
// is off).
func (c Config) StatusURL() string {
	if c.HTTPAddr == HTTPOff || c.HTTPAddr == "" {
		return ""
	}
	return "http://" + c.HTTPAddr + "/"
}
