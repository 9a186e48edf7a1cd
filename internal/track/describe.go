package track

import "fmt"

// Describe says how the object is, as an operator reads it in the reason
// of a VRRP transition: "track_script chk_nginx failed", "track_interface
// eth1 down", "track_file f = 0". The keyword is the one an instance
// tracks the object with (keepalived.conf(5) track_script, track_file,
// track_interface, track_process).
func (u Update) Describe() string {
	kw, how := u.Kind.String(), fmt.Sprintf("ok=%v value=%d", u.OK, u.Value)
	switch u.Kind {
	case KindScript:
		kw, how = "track_script", pick(u.OK, "ok", "failed")
	case KindInterface:
		kw, how = "track_interface", pick(u.OK, "up", "down")
	case KindFile:
		kw, how = "track_file", fmt.Sprintf("= %d", u.Value)
	case KindBFD:
		kw, how = "bfd", pick(u.OK, "up", "down")
	case KindProcess:
		kw, how = "track_process", pick(u.OK, fmt.Sprintf("running (%d)", u.Value), fmt.Sprintf("below quorum (%d running)", u.Value))
	}
	return kw + " " + u.Name + " " + how
}

func pick(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}
