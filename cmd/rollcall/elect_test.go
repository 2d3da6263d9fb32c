package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rollcall/rollcall/election"
	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

// TestElectUsage: what `rollcall elect` says about a bad command line, and
// its help (internal/elect's tests run the election itself).
func TestElectUsage(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // in stdout
		wantErr  string // in stderr
	}{
		{name: "help", args: []string{"--help"}, wantCode: 0, wantOut: "ROLLCALL_TERM"},
		{name: "help lists the flags", args: []string{"-h"}, wantCode: 0, wantOut: "-grace"},
		{name: "nothing", args: nil, wantCode: 2, wantErr: "missing SERVICE and CMD"},
		{name: "missing --", args: []string{"web", "sh", "-c", "true"}, wantCode: 2, wantErr: "missing -- between SERVICE and CMD"},
		{name: "missing CMD", args: []string{"web", "--"}, wantCode: 2, wantErr: "missing CMD after --"},
		{name: "only service", args: []string{"web"}, wantCode: 2, wantErr: "missing -- CMD"},
		{name: "bad service", args: []string{"Web_1", "--", "true"}, wantCode: 2, wantErr: "service name \"Web_1\" must be a lower-case DNS label"},
		{name: "flag after service", args: []string{"web", "--ttl", "5s", "--", "true"}, wantCode: 2, wantErr: "put flags before web"},
		{name: "bad host", args: []string{"--host", "a.b", "web", "--", "true"}, wantCode: 2, wantErr: "--host"},
		{name: "bad ttl", args: []string{"--ttl", "1500ms", "web", "--", "true"}, wantCode: 2, wantErr: "whole seconds"},
		{name: "negative grace", args: []string{"--grace", "-1s", "web", "--", "true"}, wantCode: 2, wantErr: "--grace -1s: must not be negative"},
		{name: "bad prefix", args: []string{"--prefix", "rollcall", "web", "--", "true"}, wantCode: 2, wantErr: "--prefix"},
		{name: "empty endpoints", args: []string{"--endpoints", " , ", "web", "--", "true"}, wantCode: 2, wantErr: "--endpoints is empty"},
		{name: "unknown flag", args: []string{"--nope", "web", "--", "true"}, wantCode: 2, wantErr: "flag provided but not defined: -nope"},
		{name: "no -timeout", args: []string{"-timeout", "1s", "web", "--", "true"}, wantCode: 2, wantErr: "flag provided but not defined: -timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), append([]string{"elect"}, tc.args...), &out, &errOut)
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d; stderr: %s", code, tc.wantCode, errOut.String())
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Fatalf("stdout %q lacks %q", out.String(), tc.wantOut)
			}
			if !strings.Contains(errOut.String(), tc.wantErr) {
				t.Fatalf("stderr %q lacks %q", errOut.String(), tc.wantErr)
			}
		})
	}
}

// TestElectFlags: the etcd flags read as ls and status read them:
// ROLLCALL_ENDPOINTS sets the default endpoints, an explicit -endpoints or
// --endpoints still wins; the other flags land in the options.
func TestElectFlags(t *testing.T) {
	t.Setenv(EnvEndpoints, "http://127.0.0.1:1,http://127.0.0.1:2")
	line, err := parseElect([]string{"web", "--", "true"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(line.etcd.Endpoints, ","); got != "http://127.0.0.1:1,http://127.0.0.1:2" {
		t.Errorf("endpoints from env = %q", got)
	}
	for _, dash := range []string{"-", "--"} {
		line, err = parseElect([]string{dash + "endpoints", "http://127.0.0.1:3", dash + "prefix", "/other", dash + "host", "h9",
			dash + "ttl", "3s", dash + "grace", "1s", dash + "cacert", "ca.pem", "web", "--", "sh", "-c", "true"})
		if err != nil {
			t.Fatal(err)
		}
		o := line.opts
		if got := strings.Join(line.etcd.Endpoints, ","); got != "http://127.0.0.1:3" {
			t.Errorf("%sendpoints: endpoints = %q", dash, got)
		}
		if line.etcd.CA != "ca.pem" || o.Keys.Prefix() != "/other" || o.Host != "h9" || o.TTL != 3*time.Second || o.Grace != time.Second ||
			o.Service != "web" || strings.Join(o.Cmd, " ") != "sh -c true" {
			t.Errorf("%s flags: etcd %+v, options %+v", dash, line.etcd, o)
		}
	}
}

// TestElectBinarySIGTERM: the real `rollcall elect` process, sent SIGTERM, stops
// CMD gracefully, resigns and exits with CMD's code.
func TestElectBinarySIGTERM(t *testing.T) {
	e := testkit.StartEtcd(t)
	var stdout, stderr testkit.Buffer
	cmd := testkit.Cmd(t, "rollcall", "elect", "--endpoints", e.ClientURL, "--host", "host-a", "--ttl", "2s", "--grace", "5s",
		"web", "--", "sh", "-c", `trap 'echo got-term; exit 0' TERM; echo started; while :; do sleep 0.1; done`)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	testkit.Eventually(t, electWait, "CMD started; stderr: "+stderr.String(), func() bool {
		return strings.Contains(stdout.String(), "started")
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-exited:
		exited <- err // for the cleanup
	case <-time.After(electWait):
		t.Fatalf("rollcall elect still running %v after SIGTERM; stderr:\n%s", electWait, stderr.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("exit: %v, want 0 (CMD's); stderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "got-term") {
		t.Fatalf("CMD did not get SIGTERM: %q", stdout.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), electWait)
	defer cancel()
	if _, err := election.CurrentLeader(ctx, e.Client(t), registry.MustKeys("/rollcall"), "web"); !errors.Is(err, election.ErrNoLeader) {
		t.Fatalf("after SIGTERM: %v, want no leader", err)
	}
}

// electWait bounds each wait of TestElectBinarySIGTERM.
const electWait = 20 * time.Second
