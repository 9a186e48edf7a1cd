package lab

import "testing"

// The scale-out lab's director configurations are valid, and its spec is
// one a lab can be built from, for every director count it accepts.
func TestScaleOutConf(t *testing.T) {
	for n := range MaxScaleOutDirectors + 2 {
		s := ScaleOut{Directors: n}
		if err := s.Validate(); (err == nil) != (n >= 2 && n <= MaxScaleOutDirectors) {
			t.Errorf("%d directors: Validate() = %v", n, err)
		}
		if s.Validate() != nil {
			continue
		}
		if err := s.Spec().validate(); err != nil {
			t.Errorf("%d directors: %v", n, err)
		}
		for i := range n {
			cfg := ParseConfig(t, s.Conf(i))
			if cfg.BGP == nil || len(cfg.VirtualServers) != 1 || len(cfg.VirtualServers[0].RealServers) != len(ScaleOutReals) {
				t.Errorf("dir%d: want a bgp block and one virtual server over %d real servers:\n%s", i+1, len(ScaleOutReals), s.Conf(i))
			}
		}
	}
}
