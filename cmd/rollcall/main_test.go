package main

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/rollcall/rollcall/test/testkit"
)

func TestRun(t *testing.T) {
	unreachable := "http://127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))
	tests := []struct {
		name       string
		args       []string
		env        string // ROLLCALL_ENDPOINTS
		code       int
		wantStdout []string
		wantStderr []string
	}{
		{name: "no command", args: nil, code: exitUsage, wantStderr: []string{"Usage:", "rollcall ls"}},
		{name: "help", args: []string{"help"}, code: exitOK, wantStdout: []string{"rollcall dev", "rollcall status", "rollcall elect", "ls answers"}},
		{name: "help of a command", args: []string{"help", "ls"}, code: exitOK, wantStderr: []string{"Usage: rollcall ls", "-endpoints", "-o json", "addrs_from"}},
		{name: "status -h", args: []string{"status", "-h"}, code: exitOK, wantStderr: []string{"Usage: rollcall status", "granted_ttl", "skipped", "-cacert"}},
		{name: "dev --help", args: []string{"dev", "--help"}, code: exitOK, wantStderr: []string{"Usage: rollcall dev", "-etcd-port", "-dns-addr", "-data-dir", "Ctrl-C"}},
		{name: "unknown command", args: []string{"frobnicate"}, code: exitUsage, wantStderr: []string{`unknown command "frobnicate"`, "Usage:"}},
		{name: "bad output format", args: []string{"ls", "-o", "yaml"}, code: exitUsage, wantStderr: []string{`"yaml"`, "-o table or -o json"}},
		{name: "bad prefix", args: []string{"ls", "-prefix", "rollcall"}, code: exitUsage, wantStderr: []string{"-prefix", "must start with '/'"}},
		{name: "stray argument", args: []string{"status", "web"}, code: exitUsage, wantStderr: []string{`unexpected argument "web"`}},
		{name: "bad service name", args: []string{"ls", "Web"}, code: exitUsage, wantStderr: []string{"service name", "lower-case"}},
		{name: "half the TLS files", args: []string{"ls", "-cert", "c.pem"}, code: exitFail, wantStderr: []string{"all three of cert, key and CA"}},
		{name: "bad user", args: []string{"ls", "-user", "nopassword"}, code: exitUsage, wantStderr: []string{"NAME:PASSWORD"}},
		{name: "double-dash flags", args: []string{"status", "--user", "x:y", "--prefix", "rollcall"}, code: exitUsage, wantStderr: []string{"-prefix", "must start with '/'"}},
		{name: "empty endpoints", args: []string{"ls", "-endpoints", ","}, code: exitUsage, wantStderr: []string{"-endpoints is empty", "http://127.0.0.1:2379"}},
		{name: "help of elect", args: []string{"help", "elect"}, code: exitOK, wantStdout: []string{"usage: rollcall elect", "ROLLCALL_TERM", "-endpoints", "-grace"}},
		{
			name: "etcd unreachable, endpoints from the environment",
			args: []string{"ls", "-timeout", "1s"}, env: unreachable, code: exitFail,
			wantStderr: []string{unreachable, "make run", "ROLLCALL_ENDPOINTS"},
		},
		{
			name: "dev with a port clash between its own flags",
			args: []string{"dev", "-etcd-port", "3000", "-etcd-peer-port", "3000"}, code: exitFail,
			wantStderr: []string{"both http://127.0.0.1:3000"},
		},
		{name: "dev with two etcd client flags", args: []string{"dev", "-etcd-port", "1", "-etcd-client-url", "http://127.0.0.1:2"}, code: exitUsage, wantStderr: []string{"not both"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvEndpoints, tc.env)
			var stdout, stderr strings.Builder
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout.String(), stderr.String())
			}
			for _, w := range tc.wantStdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}
