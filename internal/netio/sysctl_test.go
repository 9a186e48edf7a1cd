package netio

import (
	"net/netip"
	"testing"

	"tandem/internal/config"
)

// SetPromoteSecondaries sets the sysctl that decides whether removing the
// primary address of a subnet takes that subnet's other addresses with
// it: with it on, a VIP's removal leaves a second VIP of the same /24.
func TestSetPromoteSecondaries(t *testing.T) {
	l := oneNode(t)
	for _, on := range []bool{false, true} {
		var survived bool
		err := l.Do("n", func() error {
			if _, err := SetPromoteSecondaries("eth0", on); err != nil {
				return err
			}
			was, err := SetPromoteSecondaries("eth0", on)
			if err != nil {
				return err
			}
			if was != on {
				t.Errorf("set %v, then read back %v", on, was)
			}
			first := &config.IPAddress{Prefix: netip.MustParsePrefix("198.51.100.1/24")}
			second := &config.IPAddress{Prefix: netip.MustParsePrefix("198.51.100.2/24")}
			for _, a := range []*config.IPAddress{first, second} {
				if err := AddAddress("eth0", a); err != nil {
					return err
				}
			}
			if err := DelAddress("eth0", first); err != nil {
				return err
			}
			survived, err = HasAddress("eth0", second)
			if survived {
				return DelAddress("eth0", second)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if survived != on {
			t.Errorf("promote_secondaries %v: the second address survived the first's removal: %v", on, survived)
		}
	}
	if _, err := SetPromoteSecondaries("../all", true); err == nil {
		t.Error("a path as interface name was taken")
	}
}
