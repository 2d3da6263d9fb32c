package rollcall

import (
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/coredns/coredns/plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// hostViews is what `hostview` needs on the query path: for every address a
// host record lists, that host's view (docs/DESIGN.md, "Views"). In the
// two-tier layout a central server answers per-host servers that forward
// their host's queries, so a query's source address is the host's own and
// says which host asked; the host's view is then exactly the networks it is
// on, where the plain rule would see only the networks the one source
// address falls in (none, for a public address).
//
// An address that two or more host records list (a docker0 bridge address
// on every host, a NAT address) says nothing about who asked: queries from
// it get the plain rule, never one host's view nor the union (which would
// hand one host's overlays to another). hostview_shared_addresses counts
// them and a warning names each when it becomes shared.
//
// It is a subscriber of the block's loader beside the index: replace and
// update come from the loader's goroutine, under the loader's lock, and
// only they touch owners and addrsOf. update costs the addresses of the
// hosts that changed; a query costs one map read under a read lock.
type hostViews struct {
	nets   []network
	source string // the loader's, for the metric; set before subscribing

	// Loader's goroutine only.
	owners  map[netip.Addr][]string // address -> hosts listing it, sorted
	addrsOf map[string][]netip.Addr // host -> its addresses indexed in owners
	shared  int                     // addresses with more than one owner

	mu    sync.RWMutex
	views map[netip.Addr]viewSet // addresses with exactly one owner
}

func newHostViews(nets []network) *hostViews {
	return &hostViews{
		nets:    nets,
		owners:  map[netip.Addr][]string{},
		addrsOf: map[string][]netip.Addr{},
		views:   map[netip.Addr]viewSet{},
	}
}

// lookup returns the view of the host that registered ip, and false when no
// host or several did. ip must be unmapped. It does not allocate.
func (hv *hostViews) lookup(ip netip.Addr) (viewSet, bool) {
	hv.mu.RLock()
	v, ok := hv.views[ip]
	hv.mu.RUnlock()
	return v, ok
}

// replace rebuilds the map from every host record: after each list.
func (hv *hostViews) replace(st *state) {
	wasShared := hv.sharedSet()
	hv.owners = map[netip.Addr][]string{}
	hv.addrsOf = make(map[string][]netip.Addr, len(st.hosts))
	for name, h := range st.hosts {
		addrs := hostAddrs(h.Addrs)
		hv.addrsOf[name] = addrs
		for _, ip := range addrs {
			hv.owners[ip] = append(hv.owners[ip], name)
		}
	}
	views := make(map[netip.Addr]viewSet, len(hv.owners))
	hv.shared = 0
	for ip, hosts := range hv.owners {
		if len(hosts) == 1 {
			views[ip] = hostView(hv.nets, st.hosts[hosts[0]].Addrs)
			continue
		}
		sort.Strings(hosts)
		hv.shared++
		if _, ok := wasShared[ip]; !ok {
			hv.warnShared(ip, hosts)
		}
	}
	hv.mu.Lock()
	hv.views = views
	hv.mu.Unlock()
	hv.publish()
}

// update applies the host records a batch of events changed: their old
// addresses leave the map, their new ones enter it, and every address they
// touch is decided again (a host's view can change without its addresses
// changing, when it gains an address on another network).
func (hv *hostViews) update(st *state, ch changes) {
	if len(ch.hosts) == 0 {
		return
	}
	// Every address a changed host had or has, and whether it was shared
	// before this batch.
	touched := map[netip.Addr]bool{}
	touch := func(ip netip.Addr) {
		if _, ok := touched[ip]; !ok {
			touched[ip] = len(hv.owners[ip]) > 1
		}
	}
	for name := range ch.hosts {
		for _, ip := range hv.addrsOf[name] {
			touch(ip)
			hosts := slices.DeleteFunc(hv.owners[ip], func(o string) bool { return o == name })
			if len(hosts) == 0 {
				delete(hv.owners, ip)
			} else {
				hv.owners[ip] = hosts
			}
		}
		delete(hv.addrsOf, name)
		h := st.hosts[name]
		if h == nil {
			continue
		}
		addrs := hostAddrs(h.Addrs)
		hv.addrsOf[name] = addrs
		for _, ip := range addrs {
			touch(ip)
			hosts := hv.owners[ip]
			i, _ := slices.BinarySearch(hosts, name)
			hv.owners[ip] = slices.Insert(hosts, i, name)
		}
	}
	set := make(map[netip.Addr]viewSet, len(touched))
	for ip, was := range touched {
		hosts := hv.owners[ip]
		if len(hosts) == 1 {
			set[ip] = hostView(hv.nets, st.hosts[hosts[0]].Addrs)
		}
		if now := len(hosts) > 1; now != was {
			if now {
				hv.shared++
				hv.warnShared(ip, hosts)
			} else {
				hv.shared--
			}
		}
	}
	hv.mu.Lock()
	for ip := range touched {
		if v, ok := set[ip]; ok {
			hv.views[ip] = v
		} else {
			delete(hv.views, ip)
		}
	}
	hv.mu.Unlock()
	hv.publish()
}

// sharedSet is the addresses now listed by more than one host.
func (hv *hostViews) sharedSet() map[netip.Addr]struct{} {
	out := map[netip.Addr]struct{}{}
	for ip, hosts := range hv.owners {
		if len(hosts) > 1 {
			out[ip] = struct{}{}
		}
	}
	return out
}

// warnShared says once, when an address becomes shared, what hostview does
// with it and where to look.
func (hv *hostViews) warnShared(ip netip.Addr, hosts []string) {
	names := hosts
	more := ""
	if len(names) > 5 {
		names, more = names[:5], " and others"
	}
	log.Warningf("hostview: address %s is listed by hosts %s%s: queries from it get the networks of the address only, not one host's view; to give a host its view, list the host's own addresses under addrs: in its servicereg config (they replace the detected ones of their network)", ip, strings.Join(names, ", "), more)
}

// publish sets the metric of shared addresses.
func (hv *hostViews) publish() {
	if hv.source != "" {
		hostviewShared.WithLabelValues(hv.source).Set(float64(hv.shared))
	}
}

// hostAddrs is every address of a host record, unmapped and each once: the
// source addresses its queries may come from.
func hostAddrs(addrs map[string][]netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, ips := range addrs {
		for _, ip := range ips {
			out = append(out, ip.Unmap())
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(out)
}

// hostviewShared is coredns_rollcall_hostview_shared_addresses: kept here
// with the one feature that sets it.
var hostviewShared = promauto.NewGaugeVec(prometheus.GaugeOpts{
	Namespace: plugin.Namespace,
	Subsystem: "rollcall",
	Name:      "hostview_shared_addresses",
	Help:      "Addresses that more than one host record lists: under hostview, queries from them get the plain rule (the networks of the address), not one host's view.",
}, []string{"source"})
