package bgp

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that the tests leave no goroutine behind but GoBGP's
// Serve loop, which has no way out: a closed speaker leaves it blocked,
// holding its BgpServer (a known cost of a reload that changes router_id
// or local_as, which makes a new speaker).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/osrg/gobgp/v3/pkg/server.(*BgpServer).Serve"))
}
