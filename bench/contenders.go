package main

import "fmt"

// ttlSeconds is the answer TTL of every contender.
const ttlSeconds = 5

// Contender is one CoreDNS configuration under test: a server block (the
// common head plus the plugin under test) and how to judge its answers.
type Contender struct {
	Name     string
	Plugin   string   // the plugin that must be compiled in
	Needs    []string // other plugins its block needs compiled in
	Corefile func(p serverPorts) string
	Check    Checker
	// DiscardStdout sends CoreDNS's standard output (the log plugin's
	// lines) to /dev/null.
	DiscardStdout bool
}

// rollcallContender serves the registry under prefix with views on: the
// client (127.0.0.1) is on the overlay network, so every answer takes the
// view path; a second network is declared so the view has a choice. No
// cache: answers are never staler than the watch.
func rollcallContender(name, endpoint, prefix string) Contender {
	return Contender{Name: name, Plugin: "rollcall", Check: checkAddrs,
		Corefile: func(p serverPorts) string {
			return corefileHead(p) + fmt.Sprintf(`    rollcall {
        endpoint %s
        prefix %s
        ttl %d
        network %s 127.0.0.0/8
        network dc2 10.250.0.0/16
    }
}
`, endpoint, prefix, ttlSeconds, viewNetwork)
		}}
}

// etcdContender is the stock etcd plugin over the SkyDNS copy.
func etcdContender(endpoint string) Contender {
	return Contender{Name: "etcd", Plugin: "etcd", Check: checkAddrs,
		Corefile: func(p serverPorts) string {
			return corefileHead(p) + fmt.Sprintf("    etcd {\n        endpoint %s\n        path %s\n    }\n}\n", endpoint, SkyDNSPrefix)
		}}
}

// fileContender is the stock file plugin over the same records.
func fileContender(zonefile string) Contender {
	return Contender{Name: "file", Plugin: "file", Check: checkAddrs,
		Corefile: func(p serverPorts) string {
			return corefileHead(p) + fmt.Sprintf("    file %s\n}\n", zonefile)
		}}
}

// whoamiContender is CoreDNS's floor: it looks nothing up.
func whoamiContender() Contender {
	return Contender{Name: "whoami", Plugin: "whoami", Check: checkWhoami,
		Corefile: func(p serverPorts) string { return corefileHead(p) + "    whoami\n}\n" }}
}
