package config

import (
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"tandem/internal/config/syntax"
)

type node = syntax.Node

// parser turns syntax nodes into the model, collecting diagnostics.
type parser struct {
	diags syntax.Diagnostics
	// rt resolves the iproute2 names of tables, protocols, scopes, tos.
	rt rtNames
	// The parser's own errors and warnings, for the caps in add.
	errors, warnings int
	// trackGroups are the track_group blocks read so far (trackgroup.go).
	trackGroups map[string]bool
}

func (p *parser) errorf(pos Pos, format string, a ...any) { p.add(pos, syntax.Error, format, a...) }

func (p *parser) warnf(pos Pos, format string, a ...any) { p.add(pos, syntax.Warning, format, a...) }

// add records a diagnostic, up to syntax.DefaultMaxDiagnostics errors and
// as many warnings: a configuration the preprocessor cut short at its
// token limit still had a million lines for the parser to find wrong, and
// a million messages took 800 MB. Past the errors' cap the parser gives up
// (the configuration is refused anyway); past the warnings' cap it goes on
// and says that the rest are not shown.
func (p *parser) add(pos Pos, sev syntax.Severity, format string, a ...any) {
	n, msg := &p.warnings, "more than %d warnings; the rest are not shown"
	if sev == syntax.Error {
		n, msg = &p.errors, "more than %d errors; giving up"
	}
	*n++
	switch {
	case *n <= syntax.DefaultMaxDiagnostics:
		p.diags = append(p.diags, syntax.Diagnostic{Pos: pos, Severity: sev, Msg: fmt.Sprintf(format, a...)})
	case *n == syntax.DefaultMaxDiagnostics+1:
		p.diags = append(p.diags, syntax.Diagnostic{Pos: pos, Severity: sev, Msg: fmt.Sprintf(msg, syntax.DefaultMaxDiagnostics)})
	}
}

// gaveUp reports whether the parser has stopped at its cap on errors.
func (p *parser) gaveUp() bool { return p.errors > syntax.DefaultMaxDiagnostics }

// handler reads one keyword line (and its block, if any).
type handler func(n *node)

// block dispatches the keyword lines of a block named ctx. Keywords that
// keepalived knows in that block but Tandem does not implement are named in
// a warning; anything else unknown is an error with a suggestion, so that no
// line is ever dropped silently (DESIGN.md, principle 3).
func (p *parser) block(ctx string, nodes []*node, hs map[string]handler) {
	for _, n := range nodes {
		if p.gaveUp() {
			return
		}
		kw := n.Keyword.Text
		if h, ok := hs[kw]; ok {
			h(n)
			continue
		}
		p.unknown(ctx, n, hs)
	}
}

func (p *parser) unknown(ctx string, n *node, hs map[string]handler) {
	kw := n.Keyword.Text
	if why, ok := unsupported[ctx][kw]; ok {
		p.warnf(n.Keyword.Pos, "%s: keyword %q is not supported by Tandem (%s); ignored", ctx, kw, why)
		return
	}
	cands := make([]string, 0, len(hs)+len(unsupported[ctx]))
	for k := range hs {
		cands = append(cands, k)
	}
	for k := range unsupported[ctx] {
		cands = append(cands, k)
	}
	msg := fmt.Sprintf("%s: unknown keyword %q", ctx, kw)
	if s := suggest(kw, cands); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	p.errorf(n.Keyword.Pos, "%s", msg)
}

// suggest returns the candidate closest to kw in edit distance, if it is
// close enough to be a plausible typo.
func suggest(kw string, cands []string) string {
	sort.Strings(cands)
	best, bestD := "", math.MaxInt
	for _, c := range cands {
		if d := editDistance(strings.ToLower(kw), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	if bestD <= max(2, len(kw)/3) {
		return best
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// args checks that n has between lo and hi arguments (hi < 0: no limit).
func (p *parser) args(n *node, lo, hi int) bool {
	c := len(n.Args)
	if c >= lo && (hi < 0 || c <= hi) {
		return true
	}
	pos := n.Keyword.Pos
	if c > 0 {
		pos = n.Args[0].Pos
	}
	switch {
	case lo == hi:
		p.errorf(pos, "%s takes %s, got %d", n.Keyword.Text, plural(lo, "argument"), c)
	case hi < 0:
		p.errorf(pos, "%s takes at least %s, got %d", n.Keyword.Text, plural(lo, "argument"), c)
	default:
		p.errorf(pos, "%s takes %d to %d arguments, got %d", n.Keyword.Text, lo, hi, c)
	}
	return false
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// blockOf returns the children of n, reporting an error if n has no block.
func (p *parser) blockOf(n *node) ([]*node, bool) {
	if !n.HasBlock {
		p.errorf(n.Keyword.Pos, "%s needs a { ... } block", n.Keyword.Text)
		return nil, false
	}
	return n.Block, true
}

// noBlock reports a block where the keyword takes none.
func (p *parser) noBlock(n *node) bool {
	if n.HasBlock {
		p.errorf(n.Keyword.Pos, "%s does not take a { ... } block", n.Keyword.Text)
		return false
	}
	return true
}

// uintTok reads a decimal integer in [lo, hi].
func (p *parser) uintTok(n *node, t syntax.Token, lo, hi int) (int, bool) {
	v, err := strconv.ParseInt(t.Text, 10, 64)
	if err != nil || v < int64(lo) || v > int64(hi) {
		p.errorf(t.Pos, "%s: %q is not an integer in %d..%d", n.Keyword.Text, t.Text, lo, hi)
		return 0, false
	}
	return int(v), true
}

// durTok reads keepalived's decimal seconds ("3", "0.5") with at most
// microsecond precision, in [lo, hi].
func (p *parser) durTok(n *node, t syntax.Token, lo, hi time.Duration) (Duration, bool) {
	d, err := parseSeconds(t.Text)
	if err != nil || d < lo || d > hi {
		p.errorf(t.Pos, "%s: %q is not a number of seconds in %s..%s", n.Keyword.Text, t.Text, Duration(lo).Seconds(), Duration(hi).Seconds())
		return 0, false
	}
	return Duration(d), true
}

// parseSeconds parses a non-negative decimal number of seconds.
func parseSeconds(s string) (time.Duration, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" || len(frac) > 6 || strings.ContainsAny(whole+frac, "+-") {
		return 0, fmt.Errorf("bad number %q", s)
	}
	w := int64(0)
	if whole != "" {
		var err error
		if w, err = strconv.ParseInt(whole, 10, 64); err != nil || w > math.MaxInt64/int64(time.Second) {
			return 0, fmt.Errorf("bad number %q", s)
		}
	}
	f := int64(0)
	if frac != "" {
		var err error
		if f, err = strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64); err != nil {
			return 0, fmt.Errorf("bad number %q", s)
		}
	}
	return time.Duration(w)*time.Second + time.Duration(f)*time.Microsecond, nil
}

// ignoreArgsFrom warns about the arguments of n from index i on. keepalived
// checks no argument count for its keywords: each handler reads the vector
// slots it wants (strvec_slot) and never looks at the others, so a flag
// followed by a word ("enable_script_security yes") or a line with a word
// too many ("virtual_server 192.0.2.1 80 80") loads there.
func (p *parser) ignoreArgsFrom(n *node, i int) {
	if len(n.Args) <= i {
		return
	}
	what := "argument"
	if len(n.Args) > i+1 {
		what += "s"
	}
	p.warnf(n.Args[i].Pos, "%s: %s %q ignored, as keepalived does", n.Keyword.Text, what, strings.Join(tokenTexts(n.Args[i:]), " "))
}

// firstArgs is n with only its first k arguments, warning about the others
// as ignoreArgsFrom does.
func (p *parser) firstArgs(n *node, k int) *node {
	if len(n.Args) <= k {
		return n
	}
	p.ignoreArgsFrom(n, k)
	c := *n
	c.Args = n.Args[:k]
	return &c
}

// boolArgs reads a flag keyword: alone it means true; it may also carry an
// explicit true/false (on/off, yes/no), as keepalived's check_true_false()
// accepts; further words are ignored with a warning.
func (p *parser) boolArgs(n *node) (bool, bool) {
	if !p.noBlock(n) {
		return false, false
	}
	if len(n.Args) == 0 {
		return true, true
	}
	p.ignoreArgsFrom(n, 1)
	switch strings.ToLower(n.Args[0].Text) {
	case "true", "on", "yes":
		return true, true
	case "false", "off", "no":
		return false, true
	}
	p.errorf(n.Args[0].Pos, "%s: %q is not true or false", n.Keyword.Text, n.Args[0].Text)
	return false, false
}

// Handlers that store into a field.

func (p *parser) setFlag(dst *bool) handler {
	return func(n *node) {
		if v, ok := p.boolArgs(n); ok {
			*dst = v
		}
	}
}

func (p *parser) setFlagPtr(dst **bool) handler {
	return func(n *node) {
		if v, ok := p.boolArgs(n); ok {
			*dst = &v
		}
	}
}

// setConst sets *dst to v for a keyword that takes no argument (nopreempt).
// keepalived's handlers for these ignore their arguments (the strvec is
// unused), so "omega on" and even "omega off" mean omega: arguments are
// warned about, not errors.
func (p *parser) setConst(dst *bool, v bool) handler {
	return func(n *node) {
		if p.noBlock(n) {
			p.ignoreArgsFrom(n, 0)
			*dst = v
		}
	}
}

// intArg reads the single integer argument of n, in [lo, hi].
func (p *parser) intArg(n *node, lo, hi int) (int, bool) {
	if !p.noBlock(n) || !p.args(n, 1, 1) {
		return 0, false
	}
	return p.uintTok(n, n.Args[0], lo, hi)
}

// durArg reads the single duration argument of n, in [lo, hi].
func (p *parser) durArg(n *node, lo, hi time.Duration) (Duration, bool) {
	if !p.noBlock(n) || !p.args(n, 1, 1) {
		return 0, false
	}
	return p.durTok(n, n.Args[0], lo, hi)
}

func (p *parser) setInt(dst *int, lo, hi int) handler {
	return func(n *node) {
		if v, ok := p.intArg(n, lo, hi); ok {
			*dst = v
		}
	}
}

func (p *parser) setIntPtr(dst **int, lo, hi int) handler {
	return func(n *node) {
		if v, ok := p.intArg(n, lo, hi); ok {
			*dst = &v
		}
	}
}

func (p *parser) setDur(dst *Duration, lo, hi time.Duration) handler {
	return func(n *node) {
		if v, ok := p.durArg(n, lo, hi); ok {
			*dst = v
		}
	}
}

func (p *parser) setDurPtr(dst **Duration, lo, hi time.Duration) handler {
	return func(n *node) {
		if v, ok := p.durArg(n, lo, hi); ok {
			*dst = &v
		}
	}
}

// tandemOnly wraps the handler of a keyword keepalived does not have: it
// is applied, and `tandem check` notes that keepalived would refuse the
// file.
func (p *parser) tandemOnly(h handler) handler {
	return func(n *node) {
		p.warnf(n.Keyword.Pos, "%s is a Tandem extension: keepalived does not accept it", n.Keyword.Text)
		h(n)
	}
}

func (p *parser) setStr(dst *string) handler {
	return func(n *node) {
		if p.noBlock(n) && p.args(n, 1, 1) {
			*dst = n.Args[0].Text
		}
	}
}

// setCmd reads a script command line. keepalived takes either one quoted
// string holding the whole command or the words of the line; either way it
// is split into words here and run without a shell.
func (p *parser) setCmd(dst *[]string) handler {
	return func(n *node) {
		if p.noBlock(n) && p.args(n, 1, -1) {
			*dst = p.command(n)
		}
	}
}

func (p *parser) command(n *node) []string {
	if len(n.Args) > 1 && n.Args[0].Quoted {
		// keepalived.conf(5): notify scripts may name the user and group
		// to run as after the quoted command.
		p.warnf(n.Args[1].Pos, "%s: running this script as user %q is not supported by Tandem; it runs as script_user", n.Keyword.Text, n.Args[1].Text)
		return p.command(&node{Keyword: n.Keyword, Args: n.Args[:1]})
	}
	if len(n.Args) == 1 && n.Args[0].Quoted {
		words, err := splitCommand(n.Args[0].Text)
		if err != nil {
			p.errorf(n.Args[0].Pos, "%s: %v", n.Keyword.Text, err)
			return nil
		}
		if len(words) == 0 {
			p.errorf(n.Args[0].Pos, "%s: empty command", n.Keyword.Text)
		}
		return words
	}
	words := make([]string, len(n.Args))
	for i, a := range n.Args {
		words[i] = a.Text
	}
	return words
}

// splitCommand splits a quoted command string into words, honouring single
// and double quotes inside it as a shell would for plain words (keepalived
// does the same in its notify/script parsing); no expansion is done.
func splitCommand(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote in command %q", quote, s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// enumTok reads t as one of the allowed words (ignoring case), giving its
// canonical spelling; any other word is an error that names them.
func (p *parser) enumTok(n *node, t syntax.Token, allowed ...string) (string, bool) {
	for _, a := range allowed {
		if strings.EqualFold(t.Text, a) {
			return a, true
		}
	}
	msg := fmt.Sprintf("%s: %q is not one of %s", n.Keyword.Text, t.Text, strings.Join(allowed, ", "))
	if s := suggest(t.Text, append([]string(nil), allowed...)); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	p.errorf(t.Pos, "%s", msg)
	return "", false
}

// rtTok resolves t as iproute2 does a table, protocol, scope or tos: by
// number or by name; what names the line in the diagnostic.
func (p *parser) rtTok(what string, k rtKind, t syntax.Token) (uint32, bool) {
	v, err := p.rt.resolve(k, t.Text)
	if err != nil {
		p.errorf(t.Pos, "%s: %v", what, err)
		return 0, false
	}
	return v, true
}

func (p *parser) addrTok(n *node, t syntax.Token) (netip.Addr, bool) {
	a, err := netip.ParseAddr(t.Text)
	if err != nil || a.Zone() != "" {
		p.errorf(t.Pos, "%s: %q is not an IP address", n.Keyword.Text, t.Text)
		return netip.Addr{}, false
	}
	return a, true
}

// hostAddrTok reads a VRRP source or peer address as keepalived's
// inet_stosockaddr() does: text from the first '/' or '-' on (a prefix
// length or a range) is dropped, so "fd00::2/64" is fd00::2. what names
// the keyword in messages.
func (p *parser) hostAddrTok(what string, t syntax.Token) (netip.Addr, bool) {
	s, cut := t.Text, ""
	if i := strings.IndexAny(s, "/-"); i >= 0 {
		s, cut = s[:i], s[i:]
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		p.errorf(t.Pos, "%s: %q is not an IP address", what, t.Text)
		return netip.Addr{}, false
	}
	if cut != "" {
		p.warnf(t.Pos, "%s: %q read as %s: the %q is dropped, as keepalived does", what, t.Text, a, cut)
	}
	return a, true
}

// setHostAddr is setAddr with hostAddrTok.
func (p *parser) setHostAddr(dst *netip.Addr) handler {
	return func(n *node) {
		if !p.noBlock(n) || !p.args(n, 1, 1) {
			return
		}
		if a, ok := p.hostAddrTok(n.Keyword.Text, n.Args[0]); ok {
			*dst = a
		}
	}
}

func (p *parser) setAddr(dst *netip.Addr) handler {
	return func(n *node) {
		if !p.noBlock(n) || !p.args(n, 1, 1) {
			return
		}
		if a, ok := p.addrTok(n, n.Args[0]); ok {
			*dst = a
		}
	}
}

func (p *parser) portTok(n *node, t syntax.Token) (int, bool) {
	return p.uintTok(n, t, 0, 65535)
}

func (p *parser) setPort(dst *int) handler {
	return func(n *node) {
		if !p.noBlock(n) || !p.args(n, 1, 1) {
			return
		}
		if v, ok := p.portTok(n, n.Args[0]); ok {
			*dst = v
		}
	}
}

// words reads a block of lines that are each a list of words
// (notification_email { a@b c@d }), flattened.
func (p *parser) words(n *node) []string {
	if !p.args(n, 0, 0) {
		return nil
	}
	kids, ok := p.blockOf(n)
	if !ok {
		return nil
	}
	var out []string
	for _, k := range kids {
		if k.HasBlock {
			p.errorf(k.Keyword.Pos, "%s: unexpected block in a list", n.Keyword.Text)
			continue
		}
		out = append(out, k.Keyword.Text)
		for _, a := range k.Args {
			out = append(out, a.Text)
		}
	}
	return out
}

// named reads the head of a named block ("vrrp_instance VI_1 {"): its one
// argument and its children.
func (p *parser) named(n *node) (name string, kids []*node, ok bool) {
	if !p.args(n, 1, 1) {
		return "", nil, false
	}
	kids, ok = p.blockOf(n)
	return n.Args[0].Text, kids, ok
}
