package check

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"tandem/internal/config"
)

// File is FILE_CHECK: it follows a vrrp_track_file (keepalived
// check_file.c, trackers/track_file.c). The file holds a number, read as
// C's strtol(…, 0) reads it from its first 127 bytes (missing file or no
// number: 0; outside the 32-bit range: ignored, the last value stands).
// With weight 0, a non-zero value is down (reverse: zero is down).
// Otherwise value × weight (negated for reverse) is added to the real
// server's weight, and a product at or below the 32-bit minimum is down
// (process_update_checker_track_file_status). keepalived is notified by
// inotify; Tandem reads the file every delay_loop.
type File struct {
	path    string
	weight  int64
	reverse bool
	last    int64
}

func newFile(c *config.Checker, env Env) (*File, error) {
	if c.File == nil {
		return nil, fmt.Errorf("%s: no track_file", c.Type)
	}
	for _, tf := range env.TrackFiles {
		if tf.Name != c.File.TrackFile {
			continue
		}
		f := &File{path: tf.File, weight: int64(c.File.Weight), reverse: c.File.Reverse}
		if !c.File.WeightSet {
			// check_file.c: without its own weight the checker takes the
			// track file's.
			f.weight, f.reverse = int64(tf.Weight), tf.Reverse
		}
		return f, nil
	}
	return nil, fmt.Errorf("%s: unknown track_file %q", c.Type, c.File.TrackFile)
}

// Check reads the file and turns its value into a verdict and weight.
func (f *File) Check(context.Context) Result {
	start := time.Now()
	if v, ok := readTrackValue(f.path); ok {
		f.last = v
	}
	if f.weight == 0 {
		if (f.last != 0) != f.reverse {
			return result(start, fmt.Errorf("%s %s: value %d", config.CheckFile, f.path, f.last))
		}
		return result(start, nil)
	}
	p := f.last * f.weight
	if f.reverse {
		p = -p
	}
	if p <= math.MinInt32 {
		return result(start, fmt.Errorf("%s %s: value %d × weight %d is a fault", config.CheckFile, f.path, f.last, f.weight))
	}
	d := int(min(p, math.MaxInt32))
	r := result(start, nil)
	r.WeightDelta = &d
	return r
}

// readTrackValue reads the file's number; ok is false when the number is
// out of range and must be ignored.
func readTrackValue(path string) (int64, bool) {
	fh, err := os.Open(path)
	if err != nil {
		return 0, true
	}
	defer fh.Close()
	buf := make([]byte, 127)
	n, _ := io.ReadFull(fh, buf)
	v, ok := strtol(string(buf[:n]))
	if !ok || v < math.MinInt32 || v > math.MaxInt32+1 {
		return 0, false
	}
	return v, true
}

// strtol parses the leading number of s as C's strtol with base 0 does:
// leading space, a sign, then 0x hex, 0 octal or decimal, stopping at the
// first other character. No digits gives 0. ok is false on overflow.
func strtol(s string) (int64, bool) {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	base := int64(10)
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && digitVal(s[2]) < 16:
		base, s = 16, s[2:]
	case len(s) > 0 && s[0] == '0':
		base = 8
	}
	var v int64
	for i := 0; i < len(s); i++ {
		d := int64(digitVal(s[i]))
		if d >= base {
			break
		}
		if v > (math.MaxInt64-d)/base {
			return 0, false
		}
		v = v*base + d
	}
	if neg {
		v = -v
	}
	return v, true
}

func digitVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	}
	return 99
}
