// Command etcdmember runs one etcd member, from an etcd YAML config file
// (etcd's own format: name, data-dir, listen-client-urls, initial-cluster and
// the rest), until SIGTERM or SIGINT. It is the etcd server of the module's
// go.mod, built by the benchmark (bench/cluster.go) so that the members of
// its 3-node cluster run as processes of their own: their CPU time is then
// theirs alone, apart from the simulated readers and agents in the
// benchmark's process. It prints "ready" once the member serves clients.
//
//	etcdmember -config member.yml
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	conf := flag.String("config", "", "etcd YAML config file (etcd's --config-file format)")
	flag.Parse()
	if *conf == "" {
		fmt.Fprintln(os.Stderr, "etcdmember: -config is required")
		os.Exit(2)
	}
	if err := run(*conf); err != nil {
		fmt.Fprintln(os.Stderr, "etcdmember:", err)
		os.Exit(1)
	}
}

// run starts the member and serves until a signal or a fatal server error.
func run(conf string) error {
	cfg, err := embed.ConfigFromFile(conf)
	if err != nil {
		return fmt.Errorf("config %s: %w", conf, err)
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start member %s: %w", cfg.Name, err)
	}
	defer e.Close()
	// A member of a new or restarted cluster is ready once a quorum is up:
	// the other members start beside it, so wait for them generously.
	select {
	case <-e.Server.ReadyNotify():
		fmt.Println("ready")
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("member %s not ready after 2m", cfg.Name)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
		return nil
	case err := <-e.Err():
		return fmt.Errorf("member %s: %w", cfg.Name, err)
	}
}
