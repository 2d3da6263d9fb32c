package main

import (
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rollcall/rollcall/internal/regwatch"
)

// ScaleConfig is the settings of the readers, leases and memory parts.
type ScaleConfig struct {
	Readers      []int         // readers: fleet sizes, ascending
	ReaderData   Dataset       // readers: the data set they all follow
	WriteRate    int           // readers: writes per second of the load
	LagFor       time.Duration // readers: how long the write load runs
	Outage       time.Duration // readers: how long etcd is down in a recovery
	RelistJitter time.Duration // readers: the re-list jitter bound of the jittered fleets
	Agents       []int         // leases: simulated agents of each run, ascending
	AgentsPer    int           // leases: agents sharing one etcd client
	LeaseFor     time.Duration // leases: the measuring interval
	HostQueries  time.Duration // memory: how long the per-host server is queried
}

// scaleFlagSet is the flags of ScaleConfig, before parsing.
type scaleFlagSet struct {
	readers, agents          *string
	services, instances      *int
	rate, agentsPer          *int
	lagFor, outage, jitter   *time.Duration
	leaseFor, hostQueriesFor *time.Duration
}

// scaleFlags defines the scale parts' flags on fs.
func scaleFlags(fs *flag.FlagSet) *scaleFlagSet {
	return &scaleFlagSet{
		readers:        fs.String("readers", "100,500,1000", "readers: simulated DNS readers of each fleet, comma-separated"),
		services:       fs.Int("readers-services", 1000, "readers: services in their data set"),
		instances:      fs.Int("readers-instances", 10, "readers: instances per service in their data set"),
		rate:           fs.Int("write-rate", 100, "readers: writes per second while the lag is measured"),
		lagFor:         fs.Duration("lag-duration", 10*time.Second, "readers: how long the write load runs"),
		outage:         fs.Duration("outage", 5*time.Second, "readers: how long every etcd member is down in a recovery"),
		jitter:         fs.Duration("relist-jitter", regwatch.DefaultRelistJitter, "readers: the re-list jitter bound (the plugin's relist_jitter) of the jittered fleets"),
		agents:         fs.String("lease-agents", "1000,10000,30000", "leases: simulated agents of each run, comma-separated"),
		agentsPer:      fs.Int("agents-per-client", 100, "leases: simulated agents sharing one etcd client (one connection per member)"),
		leaseFor:       fs.Duration("lease-interval", 30*time.Second, "leases: measuring interval"),
		hostQueriesFor: fs.Duration("host-queries", 5*time.Second, "memory: how long the per-host server is queried before its memory is read"),
	}
}

// quick sets the smoke-mode defaults of the flags not given (def).
func (f *scaleFlagSet) quick(def func(name string, apply func())) {
	def("readers", func() { *f.readers = "20,50" })
	def("readers-services", func() { *f.services = 100 })
	def("readers-instances", func() { *f.instances = 5 })
	def("lag-duration", func() { *f.lagFor = 3 * time.Second })
	def("outage", func() { *f.outage = time.Second })
	def("lease-agents", func() { *f.agents = "1000" })
	def("lease-interval", func() { *f.leaseFor = 5 * time.Second })
	def("host-queries", func() { *f.hostQueriesFor = time.Second })
}

// config checks the parsed flags and returns the settings.
func (f *scaleFlagSet) config() (ScaleConfig, error) {
	c := ScaleConfig{
		ReaderData: Dataset{Services: *f.services, PerService: *f.instances},
		WriteRate:  *f.rate, LagFor: *f.lagFor, Outage: *f.outage, RelistJitter: *f.jitter,
		AgentsPer: *f.agentsPer, LeaseFor: *f.leaseFor, HostQueries: *f.hostQueriesFor,
	}
	var err error
	if c.Readers, err = parseCounts("-readers", *f.readers); err != nil {
		return c, err
	}
	if c.Agents, err = parseCounts("-lease-agents", *f.agents); err != nil {
		return c, err
	}
	switch {
	case c.ReaderData.Services < 1 || c.ReaderData.PerService < 2:
		return c, fmt.Errorf("-readers-services must be at least 1 and -readers-instances at least 2")
	case c.WriteRate < 1 || c.WriteRate > 10000:
		return c, fmt.Errorf("-write-rate must be from 1 to 10000 writes per second")
	case c.LagFor < time.Second || c.LeaseFor < time.Second:
		return c, fmt.Errorf("-lag-duration and -lease-interval must be at least 1s")
	case c.Outage < 0 || c.RelistJitter < 0:
		return c, fmt.Errorf("-outage and -relist-jitter must not be negative")
	case c.AgentsPer < 1:
		return c, fmt.Errorf("-agents-per-client must be at least 1")
	}
	return c, nil
}

// parseCounts reads a comma-separated list of positive counts, sorted.
func parseCounts(flagName, list string) ([]int, error) {
	var ns []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %q is not a positive count (write e.g. 100,500,1000)", flagName, f)
		}
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns, nil
}
