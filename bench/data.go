package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/registry"
)

// Zone is the DNS zone every contender serves.
const Zone = "infra.example.com."

// SkyDNSPrefix is where the etcd plugin's copy of the data set lives; the
// etcd plugin maps infra.example.com. to /skydns/com/example/infra.
const SkyDNSPrefix = "/skydns"

// viewNetwork is the overlay network the benchmark client is on: the
// rollcall Corefile declares it with loopback's CIDR, so every query takes
// the view path and is answered with overlay addresses.
const viewNetwork = "vpn0"

// Dataset is a generated registry: Services services with PerService
// instances each, spread over Hosts() hosts so that no service has two
// instances on one host. It is pure arithmetic: every contender's data and
// every expected answer are derived from it.
type Dataset struct {
	Services   int
	PerService int
}

// Hosts is the number of hosts: as many as services (each host runs
// PerService services), and at least PerService.
func (d Dataset) Hosts() int { return max(d.Services, d.PerService) }

// Instances is the number of instances.
func (d Dataset) Instances() int { return d.Services * d.PerService }

func (d Dataset) String() string {
	return fmt.Sprintf("%d services x %d instances (%d hosts)", d.Services, d.PerService, d.Hosts())
}

// Service names service s.
func (d Dataset) Service(s int) string { return fmt.Sprintf("svc-%05d", s) }

// Host names host h.
func (d Dataset) Host(h int) string { return fmt.Sprintf("h-%05d", h) }

// Shard names the shard of instance j of a service.
func (d Dataset) Shard(j int) string { return "s" + strconv.Itoa(j) }

// HostOf is the host of instance j of service s.
func (d Dataset) HostOf(s, j int) int { return (s + j) % d.Hosts() }

// Master is the instance whose host is service s's master: instance 0
// campaigns first (see WriteRollcall).
func (d Dataset) Master(s int) int { return 0 }

// PublicAddr and OverlayAddr are host h's addresses on the public network
// (198.18.0.0/15, the benchmarking range) and on the overlay (10.100.0.0/14).
func (d Dataset) PublicAddr(h int) netip.Addr { return addAddr(netip.MustParseAddr("198.18.0.0"), h) }

// OverlayAddr is host h's address on viewNetwork.
func (d Dataset) OverlayAddr(h int) netip.Addr { return addAddr(netip.MustParseAddr("10.100.0.0"), h) }

func addAddr(base netip.Addr, n int) netip.Addr {
	b := base.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// QueryKind is one of the four name shapes of docs/DESIGN.md, "Names and
// DNS rules".
type QueryKind int

// The name shapes the query mix holds, in equal parts.
const (
	QService QueryKind = iota // <service>.Z
	QHost                     // <host>.<service>.Z
	QShard                    // <shard>.<service>.Z
	QMaster                   // <service>-master.Z
)

func (k QueryKind) String() string {
	return [...]string{"service", "host.service", "shard.service", "service-master"}[k]
}

// Query is one A question and the addresses a correct answer holds.
type Query struct {
	Kind QueryKind
	Name string
	Want []netip.Addr // sorted, distinct
}

// Query returns the question of kind k about instance j of service s, and
// the overlay addresses a client on viewNetwork must get.
func (d Dataset) Query(k QueryKind, s, j int) Query {
	svc := d.Service(s)
	q := Query{Kind: k}
	switch k {
	case QService:
		q.Name = svc + "." + Zone
		for i := 0; i < d.PerService; i++ {
			q.Want = append(q.Want, d.OverlayAddr(d.HostOf(s, i)))
		}
	case QHost:
		q.Name = d.Host(d.HostOf(s, j)) + "." + svc + "." + Zone
		q.Want = []netip.Addr{d.OverlayAddr(d.HostOf(s, j))}
	case QShard:
		q.Name = d.Shard(j) + "." + svc + "." + Zone
		q.Want = []netip.Addr{d.OverlayAddr(d.HostOf(s, j))}
	case QMaster:
		q.Name = svc + "-master." + Zone
		q.Want = []netip.Addr{d.OverlayAddr(d.HostOf(s, d.Master(s)))}
	}
	sort.Slice(q.Want, func(a, b int) bool { return q.Want[a].Less(q.Want[b]) })
	return q
}

// Queries returns the query mix: every shape of name for every service
// (random instance for host and shard names), shuffled with a fixed seed so
// every contender and every run sends the same sequence.
func (d Dataset) Queries() []Query {
	r := rand.New(rand.NewPCG(6, 6))
	var qs []Query
	for s := 0; s < d.Services; s++ {
		for k := QService; k <= QMaster; k++ {
			qs = append(qs, d.Query(k, s, r.IntN(d.PerService)))
		}
	}
	r.Shuffle(len(qs), func(a, b int) { qs[a], qs[b] = qs[b], qs[a] })
	return qs
}

// DNSPerfInput is the query file dnsperf reads: "name A" per line.
func DNSPerfInput(qs []Query) string {
	var b strings.Builder
	for _, q := range qs {
		b.WriteString(q.Name)
		b.WriteString(" A\n")
	}
	return b.String()
}

// ZoneFile is the file plugin's copy of the data set: the same names with the
// overlay addresses (what a vpn0 client gets from rollcall), the master's
// address at <service>-master, as rollcall answers it.
func (d Dataset) ZoneFile(ttl int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "$ORIGIN %s\n$TTL %d\n", Zone, ttl)
	fmt.Fprintf(&b, "@ IN SOA ns.%s hostmaster.%s 1 7200 3600 1209600 %d\n", Zone, Zone, ttl)
	fmt.Fprintf(&b, "@ IN NS ns.%s\nns IN A 127.0.0.1\n", Zone)
	for s := 0; s < d.Services; s++ {
		svc := d.Service(s)
		for j := 0; j < d.PerService; j++ {
			h := d.HostOf(s, j)
			ip := d.OverlayAddr(h)
			fmt.Fprintf(&b, "%s IN A %s\n", svc, ip)
			fmt.Fprintf(&b, "%s.%s IN A %s\n", d.Host(h), svc, ip)
			fmt.Fprintf(&b, "%s.%s IN A %s\n", d.Shard(j), svc, ip)
		}
		fmt.Fprintf(&b, "%s-master IN A %s\n", svc, d.OverlayAddr(d.HostOf(s, d.Master(s))))
	}
	return b.String()
}

// skyPath is the etcd plugin's key for a name below the zone: labels
// reversed under /skydns.
func skyPath(name string) string {
	labels := dnsLabels(name)
	for i, j := 0, len(labels)-1; i < j; i, j = i+1, j-1 {
		labels[i], labels[j] = labels[j], labels[i]
	}
	return SkyDNSPrefix + "/" + strings.Join(labels, "/")
}

func dnsLabels(name string) []string {
	return strings.Split(strings.TrimSuffix(name, "."), ".")
}

// skyRecord is the SkyDNS value the etcd plugin reads.
type skyRecord struct {
	Host string `json:"host"`
	TTL  uint32 `json:"ttl,omitempty"`
}

// SkyDNSKeys is the etcd plugin's copy of the data set:
// /skydns/com/example/infra/<service>/<host> for every instance, the shard
// id as a sibling key, and <service>-master as a leaf. The SkyDNS layout
// answers a name with its whole subtree, so the etcd plugin reads both the
// instance and the shard keys for a service (the layout cannot say
// "alias"); it drops the repeated addresses, so it answers the same set.
func (d Dataset) SkyDNSKeys(ttl int) map[string]string {
	kv := make(map[string]string, d.Instances()*2+d.Services)
	val := func(ip netip.Addr) string {
		b, _ := json.Marshal(skyRecord{Host: ip.String(), TTL: uint32(ttl)})
		return string(b)
	}
	for s := 0; s < d.Services; s++ {
		svc := d.Service(s)
		for j := 0; j < d.PerService; j++ {
			h := d.HostOf(s, j)
			kv[skyPath(d.Host(h)+"."+svc+"."+Zone)] = val(d.OverlayAddr(h))
			kv[skyPath(d.Shard(j)+"."+svc+"."+Zone)] = val(d.OverlayAddr(h))
		}
		kv[skyPath(svc+"-master."+Zone)] = val(d.OverlayAddr(d.HostOf(s, d.Master(s))))
	}
	return kv
}

// maxTxnOps stays under etcd's default --max-txn-ops (128).
const maxTxnOps = 100

// putAll writes kv in transactions of maxTxnOps puts, a few at a time.
func putAll(ctx context.Context, cli *clientv3.Client, kv map[string]string, opts ...clientv3.OpOption) error {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	n := (len(keys) + maxTxnOps - 1) / maxTxnOps
	return parallel(ctx, n, 8, func(ctx context.Context, i int) error {
		batch := keys[i*maxTxnOps : min((i+1)*maxTxnOps, len(keys))]
		ops := make([]clientv3.Op, 0, len(batch))
		for _, k := range batch {
			ops = append(ops, clientv3.OpPut(k, kv[k], opts...))
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("write %d keys from %s: %w", len(batch), batch[0], err)
		}
		return nil
	})
}

// RollcallHost is host h's record: public and overlay addresses.
func (d Dataset) RollcallHost(h int) *registry.Host {
	return &registry.Host{Name: d.Host(h), Addrs: registry.Addrs{
		registry.PublicNetwork: {d.PublicAddr(h)},
		viewNetwork:            {d.OverlayAddr(h)},
	}}
}

// RollcallInstance is instance j of service s.
func (d Dataset) RollcallInstance(s, j int) *registry.Instance {
	return &registry.Instance{
		Service: d.Service(s), Host: d.Host(d.HostOf(s, j)), Shard: d.Shard(j),
		Ports: []registry.Port{{Name: "http", Port: 8080, Proto: "tcp"}},
	}
}

// leaseTTL outlives any benchmark run, so no keepalive is needed.
const leaseTTL = 3600

// WriteRollcall writes the data set under prefix as agents would: one lease
// per host carrying its host record, its instances and its candidacies.
// Instances 0 and 1 of each service campaign, 0 in an earlier transaction,
// so 0 holds the lower create revision and is master.
func (d Dataset) WriteRollcall(ctx context.Context, cli *clientv3.Client, prefix string) error {
	keys, err := registry.NewKeys(prefix)
	if err != nil {
		return err
	}
	leases := make([]clientv3.LeaseID, d.Hosts())
	err = parallel(ctx, len(leases), 16, func(ctx context.Context, h int) error {
		l, err := cli.Grant(ctx, leaseTTL)
		if err != nil {
			return fmt.Errorf("grant lease for %s: %w", d.Host(h), err)
		}
		leases[h] = l.ID
		return nil
	})
	if err != nil {
		return err
	}
	// Keys grouped by lease, as putAll takes one option set per call.
	byHost := make([]map[string]string, d.Hosts())
	for h := range byHost {
		v, err := registry.EncodeHost(d.RollcallHost(h))
		if err != nil {
			return err
		}
		byHost[h] = map[string]string{keys.Host(d.Host(h)): string(v)}
	}
	for s := 0; s < d.Services; s++ {
		for j := 0; j < d.PerService; j++ {
			v, err := registry.EncodeInstance(d.RollcallInstance(s, j))
			if err != nil {
				return err
			}
			h := d.HostOf(s, j)
			byHost[h][keys.Instance(d.Host(h), d.Service(s))] = string(v)
		}
	}
	if err := putLeased(ctx, cli, byHost, leases); err != nil {
		return err
	}
	for round := 0; round < min(2, d.PerService); round++ {
		cand := make([]map[string]string, d.Hosts())
		for h := range cand {
			cand[h] = map[string]string{}
		}
		for s := 0; s < d.Services; s++ {
			h := d.HostOf(s, round)
			key := keys.Election(d.Service(s)) + "/" + strconv.FormatInt(int64(leases[h]), 16)
			cand[h][key] = d.Host(h)
		}
		if err := putLeased(ctx, cli, cand, leases); err != nil {
			return err
		}
	}
	return nil
}

// putLeased writes each host's keys on that host's lease, batching hosts
// into transactions of at most maxTxnOps puts.
func putLeased(ctx context.Context, cli *clientv3.Client, byHost []map[string]string, leases []clientv3.LeaseID) error {
	var batch []clientv3.Op
	var all [][]clientv3.Op
	for h, kv := range byHost {
		keys := make([]string, 0, len(kv))
		for k := range kv {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			batch = append(batch, clientv3.OpPut(k, kv[k], clientv3.WithLease(leases[h])))
			if len(batch) == maxTxnOps {
				all, batch = append(all, batch), nil
			}
		}
	}
	if len(batch) > 0 {
		all = append(all, batch)
	}
	return parallel(ctx, len(all), 8, func(ctx context.Context, i int) error {
		if _, err := cli.Txn(ctx).Then(all[i]...).Commit(); err != nil {
			return fmt.Errorf("write %d registry keys: %w", len(all[i]), err)
		}
		return nil
	})
}
