package syntax

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// builtinNames lists keepalived's pre-defined definitions for messages.
const builtinNames = "_PWD, _INSTANCE, _RANDOM, _HASH, _BANG, _ENV"

// builtin computes the value of one of keepalived's pre-defined definitions
// (keepalived.conf(5), "Pre-defined definitions"; set_std_definitions() in
// parser.c) at the reference at:
//
//	${_PWD}                the directory of the file being read: keepalived
//	                       chdir()s into it, so it differs per included file
//	${_INSTANCE}           the -i/--config-id value (default the host name)
//	${_RANDOM [MIN [MAX]]} a random integer in [MIN, MAX], default [0, 32767]
//	${_HASH}, ${_BANG}     '#' and '!', which would otherwise start a comment
//	${_ENV NAME}           the environment variable NAME (keepalived 2.4)
//
// Parameters are only read inside braces. When keepalived's
// find_definition() would not match the reference (parameters given to a
// definition that takes none, or anything but digits and spaces for
// _RANDOM), keepalived leaves it as text: so does builtin, with a warning,
// and ok false.
func (p *preprocessor) builtin(name, params string, at Pos) (val string, ok bool) {
	if params != "" && name != "_RANDOM" && name != "_ENV" {
		p.warnOnce(at, "$%s takes no parameters; left as text, as keepalived does", name)
		return "", false
	}
	switch name {
	case "_HASH":
		return "#", true
	case "_BANG":
		return "!", true
	case "_INSTANCE":
		return p.opts.ConfigID, true
	case "_PWD":
		return physicalDir(p.dir), true
	case "_ENV":
		if params == "" || strings.ContainsAny(params, " \t") {
			p.warnOnce(at, "$_ENV takes one environment variable name, as in ${_ENV HOME}; left as text")
			return "", false
		}
		// keepalived 2.4's get_env_var(): an unset variable is empty.
		getenv := p.opts.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		return getenv(params), true
	}
	return p.random(params, at)
}

// physicalDir is dir as getcwd(3) gives it after keepalived's chdir():
// absolute, with symbolic links resolved.
func physicalDir(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return dir
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real
	}
	return abs
}

// random reads _RANDOM's "[MIN [MAX]]" as keepalived's get_random() does:
// decimal numbers read with strtoul (so one too large is ULONG_MAX), MIN
// default 0, MAX default 32767.
func (p *preprocessor) random(params string, at Pos) (string, bool) {
	if strings.Trim(params, " 0123456789") != "" {
		p.warnOnce(at, "${_RANDOM %s}: parameters must be numbers; left as text, as keepalived does", params)
		return "", false
	}
	nums := []uint64{0, 32767}
	fields := strings.Fields(params)
	if len(fields) > 2 {
		p.warnOnce(at, "${_RANDOM %s}: more than MIN and MAX; the rest is ignored, as keepalived does", params)
		fields = fields[:2]
	}
	for i, f := range fields {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			v = math.MaxUint64
		}
		nums[i] = v
	}
	lo, hi := nums[0], nums[1]
	if lo > hi {
		p.warnOnce(at, "${_RANDOM %s}: MIN is more than MAX; using %d, as keepalived 2.4 does", params, lo)
		hi = lo
	}
	draw := p.opts.Random
	if draw == nil {
		draw = uniform
	}
	return strconv.FormatUint(draw(lo, hi), 10), true
}

// uniform is a random integer in [lo, hi].
func uniform(lo, hi uint64) uint64 {
	if lo == 0 && hi == math.MaxUint64 {
		return rand.Uint64()
	}
	return lo + rand.Uint64N(hi-lo+1)
}
