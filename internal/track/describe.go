package track

import "fmt"

// Describe says how the object is, as an operator reads it in the reason
// of a VRRP transition: "track_script chk_nginx failed", "track_interface
// eth1 down", "track_file f = 0". The keyword is the one an instance
// tracks the object with (keepalived.conf(5) track_script, track_file,
// track_interface, track_process).
func (u Update) Describe() string {
	var kw, how string
	switch u.Kind {
	case KindScript:
		kw, how = "track_script", "failed"
		if u.OK {
			how = "ok"
		}
	case KindFile:
		kw, how = "track_file", fmt.Sprintf("= %d", u.Value)
	case KindInterface:
		kw, how = "track_interface", "down"
		if u.OK {
			how = "up"
		}
	case KindProcess:
		kw, how = "track_process", fmt.Sprintf("below quorum (%d running)", u.Value)
		if u.OK {
			how = fmt.Sprintf("running (%d)", u.Value)
		}
	default:
		kw, how = u.Kind.String(), fmt.Sprintf("ok=%v value=%d", u.OK, u.Value)
	}
	return kw + " " + u.Name + " " + how
}
