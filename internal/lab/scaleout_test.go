package lab

import "testing"

// The scale-out lab's director configurations are valid, and its spec is
// one a lab can be built from, for every director count it accepts.
func TestScaleOutConf(t *testing.T) {
	for n := range 2 * (MaxScaleOutDirectors + 2) {
		s := ScaleOut{Directors: n / 2, BFD: n%2 == 1}
		if err := s.Validate(); (err == nil) != (s.Directors >= 2 && s.Directors <= MaxScaleOutDirectors) {
			t.Errorf("%d directors: Validate() = %v", s.Directors, err)
		}
		if s.Validate() != nil {
			continue
		}
		if err := s.Spec().validate(); err != nil {
			t.Errorf("%d directors: %v", s.Directors, err)
		}
		for i := range s.Directors {
			cfg := ParseConfig(t, s.Conf(i))
			if cfg.BGP == nil || len(cfg.VirtualServers) != 1 || len(cfg.VirtualServers[0].RealServers) != len(ScaleOutReals) || (len(cfg.BFDInstances) == 1) != s.BFD {
				t.Errorf("dir%d: want a bgp block, one virtual server over %d real servers, and a bfd_instance with BFD:\n%s", i+1, len(ScaleOutReals), s.Conf(i))
			}
		}
	}
}
