// Command coredns is CoreDNS with the rollcall plugin compiled in, plus the
// stock plugins a DNS operator expects (see internal/corednsbuild).
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/rollcall/rollcall/internal/corednsbuild"
)

func main() {
	coremain.Run()
}
