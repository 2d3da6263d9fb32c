// Command healthd is a test service for the agent's health checks
// (servicereg/health_test.go): an HTTP server, a bare TCP listener and a
// gRPC health server, all ready exactly while the file named by -ready
// exists, so that a test flips readiness by creating and removing it. While
// the file named by -busy exists too, GET /ready answers 429 (a warning).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	httpAddr := flag.String("http", "", "HTTP listen address: GET /ready is 200 while ready, else 503")
	tcpAddr := flag.String("tcp", "", "TCP listen address: accepts and closes connections")
	grpcAddr := flag.String("grpc", "", "gRPC listen address: grpc.health.v1, SERVING while ready")
	readyFile := flag.String("ready", "", "ready while this file exists")
	busyFile := flag.String("busy", "", "GET /ready is 429 while ready and this file exists")
	flag.Parse()
	exists := func(path string) bool {
		_, err := os.Stat(path)
		return path != "" && err == nil
	}
	ready := func() bool { return exists(*readyFile) }
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	hl := listen(*httpAddr)
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		if ready() && exists(*busyFile) {
			http.Error(w, "busy", http.StatusTooManyRequests)
			return
		}
		if ready() {
			fmt.Fprintln(w, "ready")
			return
		}
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	})
	go func() { _ = http.Serve(hl, mux) }()

	tl := listen(*tcpAddr)
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	gl := listen(*grpcAddr)
	hs := health.NewServer()
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	go func() { _ = gs.Serve(gl) }()
	// The gRPC status follows the file; the HTTP handler reads it per request.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if ready() {
			st = healthpb.HealthCheckResponse_SERVING
		}
		hs.SetServingStatus("", st)
		select {
		case <-ctx.Done():
			gs.Stop()
			return
		case <-tick.C:
		}
	}
}

func listen(addr string) net.Listener {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	return l
}
