package syntax

import (
	"bytes"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Options controls the preprocessor. Zero limits take the defaults below;
// they exist so that no input, however hostile, makes the parser use
// unbounded memory or time.
type Options struct {
	// ConfigID is matched against "@ID line" and "@^ID line" (keepalived's
	// -i/--config-id). The caller defaults it to the short host name; an
	// empty ConfigID matches no @ID, so every @^ID line is kept.
	ConfigID string
	// Random returns a random integer in [min, max] for ${_RANDOM}; nil
	// means math/rand/v2. Tests set it to make expansions deterministic.
	Random func(min, max uint64) uint64
	// Getenv reads the environment for ${_ENV NAME}; nil means os.Getenv.
	Getenv func(string) string

	MaxFileSize       int64 // bytes in one file (default 16 MiB)
	MaxTotalSize      int64 // bytes in all files read (default 64 MiB)
	MaxLineLength     int   // bytes in one line, before or after $expansion (default 64 KiB; keepalived's is 1 KiB)
	MaxDepth          int   // nesting of { } blocks (default 64)
	MaxIncludes       int   // files opened by include directives (default 1024)
	MaxIncludeDepth   int   // include chain length (default 32)
	MaxExpansion      int64 // bytes produced by $expansion and ~SEQ/~LST in total (default 8 MiB)
	MaxLoopIterations int   // lines one ~SEQ or ~LST may produce (default 65536)
	MaxDefinitions    int   // distinct $definitions (default 10000)
	MaxTokens         int   // tokens in the whole configuration (default 1M, about 250 MB at worst)
	MaxDiagnostics    int   // diagnostics before giving up (default 1000)
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def64 := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	def64(&o.MaxFileSize, 16<<20)
	def64(&o.MaxTotalSize, 64<<20)
	def(&o.MaxLineLength, 64<<10)
	def(&o.MaxDepth, 64)
	def(&o.MaxIncludes, 1024)
	def(&o.MaxIncludeDepth, 32)
	def64(&o.MaxExpansion, 8<<20)
	def(&o.MaxLoopIterations, 1<<16)
	def(&o.MaxDefinitions, 10000)
	def(&o.MaxTokens, 1<<20)
	def(&o.MaxDiagnostics, DefaultMaxDiagnostics)
	return o
}

// DefaultMaxDiagnostics is how many diagnostics a configuration gets before
// the preprocessor, and then the parser, give up: a hostile file can
// otherwise make one per token, each holding a formatted message.
const DefaultMaxDiagnostics = 1000

// maxNesting bounds the recursion of the preprocessor on generated lines:
// ~SEQ/~LST bodies (which may hold further loops) and the lines of
// multi-line definitions (which may reference further multi-line
// definitions). keepalived has no such limit; real configurations nest two
// or three levels.
const maxNesting = 16

// maxSubstitutions bounds $expansions on one line. keepalived rescans
// replaced text, so "$A=$A" would loop for ever without it.
const maxSubstitutions = 1 << 16

// maxBraces and maxBraceAlternatives bound the work of expanding one
// include brace glob and the patterns it expands to.
const (
	maxBraces            = 64
	maxBraceAlternatives = 1024
)

// diagSink collects diagnostics up to a limit, after which processing stops.
type diagSink struct {
	list    Diagnostics
	max     int
	stopped bool
}

func (d *diagSink) add(pos Pos, sev Severity, format string, args ...any) {
	if d.stopped {
		return
	}
	if len(d.list) >= d.max {
		d.list = append(d.list, Diagnostic{Pos: pos, Severity: Error, Msg: fmt.Sprintf("too many diagnostics (%d), giving up", d.max)})
		d.stopped = true
		return
	}
	d.list = append(d.list, Diagnostic{Pos: pos, Severity: sev, Msg: fmt.Sprintf(format, args...)})
}

// fatal records an error that ends processing, such as a resource limit.
func (d *diagSink) fatal(pos Pos, format string, args ...any) {
	d.add(pos, Error, format, args...)
	d.stopped = true
}

// definition is one $NAME. A multi-line value holds its lines separated by
// '\n'. std names a keepalived built-in definition whose value is computed
// at each use (builtin).
type definition struct {
	value     string
	multiline bool
	std       string
}

// openFile identifies a file being read, for include cycle detection.
type openFile struct {
	name string
	info os.FileInfo // nil when the name is not a file on disk (ParseBytes)
}

type preprocessor struct {
	opts   Options
	ds     *diagSink
	lines  [][]Token
	defs   map[string]*definition
	stack  []openFile
	files  int
	total  int64
	budget int64
	tokens int
	// mdef is the multi-line definition whose lines are being collected
	// into mval (a string would be copied at every line).
	mdef *definition
	mval []byte
	// userDefs counts the $NAME=value definitions the files made.
	userDefs int
	// dir is the directory of the file being read, for ${_PWD}.
	dir string
	// warned holds the positions warnOnce reported, so that rescanning an
	// expanded line does not report the same reference again.
	warned map[Pos]bool
	// usedBefore holds where names were used before any definition of
	// them, to tell at the definition that those uses stayed text.
	usedBefore map[string]Pos
}

func newPreprocessor(opts Options, ds *diagSink) *preprocessor {
	p := &preprocessor{opts: opts, ds: ds, defs: map[string]*definition{}, budget: opts.MaxExpansion}
	// keepalived's set_std_definitions() (parser.c; keepalived.conf(5),
	// "Pre-defined definitions"), computed at each use (builtin).
	for _, n := range strings.Split(builtinNames, ", ") {
		p.defs[n] = &definition{std: n}
	}
	return p
}

// ParseFile reads the configuration at path and everything it includes.
// It returns the nodes it could build and the diagnostics; the caller must
// not use the nodes when the diagnostics hold an error. A diagnostic about a
// whole file (cannot be read, too large) has Line and Col 0.
func ParseFile(path string, opts Options) ([]*Node, Diagnostics) {
	opts = opts.withDefaults()
	ds := &diagSink{max: opts.MaxDiagnostics}
	p := newPreprocessor(opts, ds)
	at := Pos{File: path}
	src, info, ok := p.read(path, at)
	if !ok {
		return nil, ds.list
	}
	p.run(path, src, info)
	return buildBlocks(p.lines, opts, ds), ds.list
}

// ParseBytes parses src as if it were the file name; includes resolve
// relative to filepath.Dir(name). Results are as for ParseFile.
func ParseBytes(name string, src []byte, opts Options) ([]*Node, Diagnostics) {
	opts = opts.withDefaults()
	ds := &diagSink{max: opts.MaxDiagnostics}
	p := newPreprocessor(opts, ds)
	if int64(len(src)) > opts.MaxFileSize {
		ds.fatal(Pos{File: name}, "file is %d bytes, more than the limit of %d", len(src), opts.MaxFileSize)
		return nil, ds.list
	}
	p.total = int64(len(src))
	// When name is a file on disk, an include of it is a cycle too.
	info, err := os.Stat(name)
	if err != nil {
		info = nil
	}
	p.run(name, src, info)
	return buildBlocks(p.lines, opts, ds), ds.list
}

func (p *preprocessor) run(name string, src []byte, info os.FileInfo) {
	p.stack = append(p.stack, openFile{name, info})
	p.file(name, src, nil)
}

// read loads one file within the size limits. keepalived only reads regular
// files that are not executable (check_glob_file), so neither do we.
func (p *preprocessor) read(path string, at Pos) ([]byte, os.FileInfo, bool) {
	// Check before opening: opening a FIFO would block.
	info, err := os.Stat(path)
	if err == nil && (!info.Mode().IsRegular() || info.Mode()&0o111 != 0) {
		what := "is not a regular non-executable file"
		if info.IsDir() {
			what = "is a directory"
		}
		p.ds.add(at, Error, "configuration file %s %s", path, what)
		return nil, nil, false
	}
	f, err := os.Open(path)
	if err != nil {
		p.ds.add(at, Error, "cannot open configuration file: %v", err)
		return nil, nil, false
	}
	defer f.Close()
	if info, err = f.Stat(); err != nil || !info.Mode().IsRegular() {
		p.ds.add(at, Error, "configuration file %s changed while being opened", path)
		return nil, nil, false
	}
	if info.Size() > p.opts.MaxFileSize {
		p.ds.fatal(at, "file %s is %d bytes, more than the limit of %d", path, info.Size(), p.opts.MaxFileSize)
		return nil, nil, false
	}
	if p.total+info.Size() > p.opts.MaxTotalSize {
		p.ds.fatal(at, "configuration files total more than the limit of %d bytes", p.opts.MaxTotalSize)
		return nil, nil, false
	}
	// The file may grow after Stat: never read more than the limit.
	src, err := io.ReadAll(io.LimitReader(f, p.opts.MaxFileSize+1))
	if err != nil {
		p.ds.add(at, Error, "cannot read %s: %v", path, err)
		return nil, nil, false
	}
	if int64(len(src)) > p.opts.MaxFileSize {
		p.ds.fatal(at, "file %s is more than the limit of %d bytes", path, p.opts.MaxFileSize)
		return nil, nil, false
	}
	p.total += int64(len(src))
	if p.total > p.opts.MaxTotalSize {
		p.ds.fatal(at, "configuration files total more than the limit of %d bytes", p.opts.MaxTotalSize)
		return nil, nil, false
	}
	return src, info, true
}

// file preprocesses the physical lines of one file.
func (p *preprocessor) file(name string, src []byte, from *Pos) {
	dir := filepath.Dir(name)
	outer := p.dir
	p.dir = dir
	defer func() { p.dir = outer }()
	for n, raw := range lines(src) {
		if p.ds.stopped {
			break
		}
		pos := Pos{File: name, Line: n, Col: 1, IncludedFrom: from}
		if len(raw) > p.opts.MaxLineLength {
			// keepalived: "line too long - ignoring".
			p.ds.add(pos, Error, "line is %d bytes, more than the limit of %d; line ignored", len(raw), p.opts.MaxLineLength)
			continue
		}
		if j := bytes.IndexByte(raw, 0); j >= 0 {
			// keepalived: "configuration appears to have embedded NULs -
			// ignoring line".
			pos.Col = j + 1
			p.ds.add(pos, Error, "embedded NUL byte; line ignored")
			continue
		}
		if p.mdef != nil {
			p.continueDefinition(raw)
			continue
		}
		t, cont := decomment(raw)
		if len(t.b) == 0 && !cont {
			continue
		}
		pos.Col = t.colAt(0, 1)
		p.line(t, cont, pos, dir, 0)
	}
	// A multi-line definition does not run on into the next file.
	p.endDefinition()
}

// continueDefinition adds one physical line to a multi-line definition, as
// read_line() does: an empty line ends the definition, a comment-only line is
// skipped, a line ending in '\' is added and continues it, any other line is
// added and ends it. Lines are joined with '\n'.
func (p *preprocessor) continueDefinition(raw []byte) {
	if len(raw) == 0 {
		p.endDefinition()
		return
	}
	t, cont := decomment(raw)
	if cont {
		if len(t.b) > 0 {
			p.mval = append(append(p.mval, t.b...), '\n')
		}
		return
	}
	if len(t.b) == 0 {
		return
	}
	p.mval = append(p.mval, t.b...)
	p.endDefinition()
}

// endDefinition completes the multi-line definition being collected. One
// left empty is an ordinary empty definition (read_line).
func (p *preprocessor) endDefinition() {
	if p.mdef == nil {
		return
	}
	p.mdef.value = string(p.mval)
	p.mdef.multiline = p.mdef.value != ""
	p.mdef, p.mval = nil, nil
}

// line handles one logical line, in keepalived's order: @ID filtering,
// $NAME=value definitions, ~SEQ/~LST loops, $expansion, then include or
// tokens. level counts the generated-line recursion (see maxNesting).
func (p *preprocessor) line(t text, cont bool, pos Pos, dir string, level int) {
	if p.ds.stopped || len(t.b) == 0 {
		return
	}
	if level > maxNesting {
		p.ds.fatal(pos, "~SEQ/~LST loops or multi-line definitions nested more than %d deep", maxNesting)
		return
	}
	at := func(i int) Pos {
		q := pos
		q.Col = t.colAt(i, pos.Col)
		return q
	}

	// "@ID text" keeps text only on the host whose config id is ID, "@^ID
	// text" only on the others; without text after the id the line is
	// dropped (read_line).
	if t.b[0] == '@' {
		ofs := 1
		rev := len(t.b) > 1 && t.b[1] == '^'
		if rev {
			ofs = 2
		}
		sp := bytes.IndexAny(t.b[ofs:], " \t")
		if sp < 0 {
			return
		}
		if (string(t.b[ofs:ofs+sp]) == p.opts.ConfigID) == rev {
			return
		}
		i := ofs + sp
		for i < len(t.b) && isBlank(t.b[i]) {
			i++
		}
		t = t.slice(i, len(t.b))
		if len(t.b) == 0 {
			return
		}
	}

	if name, val, ok := parseDefinition(t.b); ok {
		p.define(name, val, cont, at(0))
		return
	}
	if cont {
		p.ds.add(at(len(t.b)), Error, "a '\\' at the end of a line only continues $definitions")
	}

	if bytes.HasPrefix(t.b, []byte("~SEQ")) || bytes.HasPrefix(t.b, []byte("~LST")) {
		p.loop(t, pos, dir, level)
		return
	}
	if t.b[0] == '~' {
		p.ds.add(at(0), Error, "unknown preprocessor directive (keepalived knows ~SEQ, ~SEQx and ~LST)")
		return
	}

	// A line that is only a reference to a multi-line definition stands
	// for the definition's lines, each processed as a line of its own.
	if d, ok := p.wholeLineMultiline(t.b); ok {
		ref := at(0)
		for _, l := range strings.Split(d.value, "\n") {
			if p.ds.stopped {
				return
			}
			if l != "" && p.charge(len(l)+lineCost, ref) {
				p.line(text{b: []byte(l), cols: repeatCol(ref.Col, len(l))}, false, ref, dir, level+1)
			}
		}
		return
	}

	first, rest, changed, ok := p.expand(t, pos)
	if !ok {
		return
	}
	// Expanded text is processed again, so that it may be a definition, a
	// loop or a conditional line. keepalived's read_line() looks for '@'
	// and '$' after expanding as if it meant to, but its "continue" leaves
	// the loop, so it only does it for the lines of a multi-line definition
	// after the first. Doing it for every line only gives a meaning to lines
	// keepalived would reject as unknown keywords.
	if changed {
		p.line(p.recomment(first, pos), false, pos, dir, level+1)
	} else {
		p.emit(first, pos, dir)
	}
	// The further lines of a multi-line definition are processed as lines of
	// their own (read_line feeds them back through the whole loop).
	for _, r := range rest {
		p.line(r, false, pos, dir, level+1)
	}
}

// warnOnce reports a warning once per position: rescanning an expanded line
// meets the same references again.
func (p *preprocessor) warnOnce(at Pos, format string, args ...any) {
	if p.warned[at] {
		return
	}
	if p.warned == nil {
		p.warned = map[Pos]bool{}
	}
	p.warned[at] = true
	p.ds.add(at, Warning, format, args...)
}

// recomment runs keepalived's decomment() over an expanded line again, as
// read_line() does after replace_param(): a '#' or '!' that expansion put
// outside quotes (${_HASH}, ${_BANG}, or a "\#" written in the line) starts
// a comment there. A line that starts with one is a comment; one that starts
// later cuts the line, which is worth a warning.
func (p *preprocessor) recomment(t text, pos Pos) text {
	out, cont, c := decommentText(t)
	if cont {
		// decomment() puts a final '\' back; only definitions use it.
		out.add('\\', t.colAt(len(t.b)-1, pos.Col))
	}
	if c >= 0 && len(out.b) > 0 {
		at := pos
		at.Col = t.colAt(c, pos.Col)
		p.ds.add(at, Warning, "%q outside quotes after $expansion starts a comment, as keepalived reads the line; the rest of the line is ignored", t.b[c])
	}
	return out
}

// wholeLineMultiline reports whether b is exactly "$NAME" or "${NAME}" for a
// multi-line definition.
func (p *preprocessor) wholeLineMultiline(b []byte) (*definition, bool) {
	s := string(b)
	if len(s) < 2 || s[0] != '$' {
		return nil, false
	}
	s = s[1:]
	if s[0] == '{' && s[len(s)-1] == '}' {
		s = s[1 : len(s)-1]
	}
	d := p.defs[s]
	if d == nil || !d.multiline {
		return nil, false
	}
	return d, true
}

// parseDefinition recognises keepalived's "$NAME=value" (check_definition):
// the name is a letter or '_' then letters, digits or '_', immediately
// followed by '='; blanks after '=' are skipped.
func parseDefinition(b []byte) (name string, val []byte, ok bool) {
	if len(b) < 3 || b[0] != '$' || !isIdentStart(b[1]) {
		return "", nil, false
	}
	i := 2
	for i < len(b) && isIdent(b[i]) {
		i++
	}
	if i == len(b) || b[i] != '=' {
		return "", nil, false
	}
	name = string(b[1:i])
	i++
	for i < len(b) && isBlank(b[i]) {
		i++
	}
	return name, b[i:], true
}

// define sets $name. When the line ended in '\' the definition is multi-line:
// its first line (if not empty) and the following physical lines up to one
// that does not end in '\' or an empty line make up the value.
func (p *preprocessor) define(name string, val []byte, multiline bool, at Pos) {
	d := p.setDefinition(name, string(val), at)
	if d == nil {
		return
	}
	if multiline {
		d.multiline = true
		p.mdef = d
		p.mval = []byte(d.value)
		if len(p.mval) > 0 {
			p.mval = append(p.mval, '\n')
		}
	}
}

func (p *preprocessor) setDefinition(name, val string, at Pos) *definition {
	d := p.defs[name]
	if d == nil {
		if len(p.defs) >= p.opts.MaxDefinitions {
			p.ds.fatal(at, "more than %d $definitions", p.opts.MaxDefinitions)
			return nil
		}
		d = &definition{}
		p.defs[name] = d
		p.userDefs++
	}
	// A definition may override a built-in one (set_definition clears fn).
	*d = definition{value: val}
	if used, ok := p.usedBefore[name]; ok {
		delete(p.usedBefore, name)
		p.ds.add(at, Warning, "$%s is defined after its use at %s, which keepalived leaves as text: it expands definitions where they are used", name, used)
	}
	return d
}

// undefinedUse reports a reference to a name not defined at that point,
// which stays text, and remembers it for a definition that comes later.
func (p *preprocessor) undefinedUse(name string, at Pos) {
	p.warnOnce(at, "$%s is not defined here; left as text, as keepalived does", name)
	if _, ok := p.usedBefore[name]; ok {
		return
	}
	if p.usedBefore == nil {
		p.usedBefore = map[string]Pos{}
	}
	if len(p.usedBefore) < p.opts.MaxDefinitions {
		p.usedBefore[name] = at
	}
}

// lineCost is what a generated line costs from the expansion budget on top
// of its bytes: the memory of its node and tokens is mostly per line.
const lineCost = 64

// charge takes n bytes of generated text from the expansion budget.
func (p *preprocessor) charge(n int, at Pos) bool {
	p.budget -= int64(n)
	if p.budget < 0 {
		p.ds.fatal(at, "$expansion and ~SEQ/~LST produce more than the limit of %d bytes", p.opts.MaxExpansion)
		return false
	}
	return true
}

// expand replaces $NAME and ${NAME} references (keepalived's replace_param).
// Replaced text is scanned again, so definitions may refer to definitions
// and a value may even complete a reference begun before it, as in
// keepalived, which rewrites its line buffer in place.
//
// keepalived leaves a reference to a name not defined at that point as
// literal text (a shell variable in a script line, or a use before the
// definition); so does tandem, with a warning once the configuration
// defines variables, so that "$VIPP" passed on as an address is explained.
// A configuration that defines none keeps every '$' as text silently. A
// reference is '$' followed by '{' or by a letter or '_'; any other '$' is
// literal text.
//
// A multi-line definition must be the last thing on its line (keepalived
// only expands it there); its first line replaces the reference and its
// other lines are returned in rest. As in keepalived, a value starting with
// '~' ends the expansion, so that the ~SEQ or ~LST it holds keeps its $var.
func (p *preprocessor) expand(t text, pos Pos) (first text, rest []text, changed, ok bool) {
	if bytes.IndexByte(t.b, '$') < 0 {
		return t, nil, false, true
	}
	x := expander{pending: []chunk{{b: t.b, cols: t.cols}}, size: len(t.b)}
	var groups [][]text
	ok = true
	subs := 0
	for len(x.pending) > 0 {
		top := &x.pending[len(x.pending)-1]
		if top.off == len(top.b) {
			x.pending = x.pending[:len(x.pending)-1]
			continue
		}
		if top.b[top.off] != '$' {
			n := bytes.IndexByte(top.b[top.off:], '$')
			if n < 0 {
				n = len(top.b) - top.off
			}
			x.copy(n)
			continue
		}
		at := pos
		at.Col = top.col(top.off)
		name, n, params, braces, isRef := parseReference(x.peek)
		if !isRef {
			x.copy(1)
			continue
		}
		var d *definition
		if name != "" {
			d = p.defs[name]
		}
		if d == nil && name != "" && name[0] == '_' {
			// find_definition() finds nothing, so keepalived leaves the
			// reference as text.
			p.warnOnce(at, "$%s is not a keepalived built-in definition (%s); left as text, as keepalived does", name, builtinNames)
			x.copy(1)
			continue
		}
		if d == nil && name != "" {
			// keepalived expands a definition where it is used and
			// leaves a name it does not know (yet) as text: a shell
			// variable in a script line, or a definition made later in
			// the file. A configuration that defines nothing uses no
			// variables, so only the others hear about it.
			if p.userDefs > 0 {
				p.undefinedUse(name, at)
			}
			x.copy(1)
			continue
		}
		after := x.peek(n)
		val := ""
		if d != nil {
			val = d.value
		}
		if d != nil && d.std != "" {
			v, ok := p.builtin(name, params, at)
			if !ok {
				x.copy(1)
				continue
			}
			val, params = v, ""
		}
		bad := true
		switch {
		case name == "":
			p.ds.add(at, Error, "'${' without a valid name and closing '}'")
		case params != "":
			p.ds.add(at, Error, "$%s does not take parameters", name)
		case !braces && after >= 0 && !strings.ContainsRune(" \t,)", rune(after)):
			// find_definition() only accepts these after a bare $NAME.
			p.ds.add(at, Error, "$%s followed by %q is not expanded by keepalived; write ${%s}", name, rune(after), name)
		case d.multiline && after >= 0:
			p.ds.add(at, Error, "multi-line definition $%s must be at the end of its line", name)
		default:
			bad = false
		}
		if bad {
			ok = false
			x.copy(1)
			continue
		}
		subs++
		if subs > maxSubstitutions {
			p.ds.add(at, Error, "more than %d $substitutions on one line (recursive definition?)", maxSubstitutions)
			return text{}, nil, false, false
		}
		cost := len(val)
		var more []text
		if d.multiline {
			lines := strings.Split(val, "\n")
			val = lines[0]
			for _, l := range lines[1:] {
				if l != "" {
					more = append(more, text{b: []byte(l), cols: repeatCol(at.Col, len(l))})
				}
			}
		}
		if x.size-n+len(val) > p.opts.MaxLineLength {
			p.ds.add(at, Error, "expanding $%s makes the line longer than the limit of %d bytes", name, p.opts.MaxLineLength)
			return text{}, nil, false, false
		}
		if !p.charge(cost+1, at) {
			return text{}, nil, false, false
		}
		x.skip(n)
		x.size += len(val)
		x.pending = append(x.pending, chunk{b: []byte(val), fixed: at.Col})
		// The further lines of a nested multi-line definition come before
		// those of the one that contained it: groups are kept in order of
		// substitution and joined last first at the end (prepending here
		// would be quadratic in the number of substitutions).
		if len(more) > 0 {
			groups = append(groups, more)
		}
		changed = true
		if v := strings.TrimLeft(val, " \t"); v != "" && v[0] == '~' {
			for len(x.pending) > 0 {
				top := &x.pending[len(x.pending)-1]
				x.copy(len(top.b) - top.off)
				x.pending = x.pending[:len(x.pending)-1]
			}
		}
	}
	for i := len(groups) - 1; i >= 0; i-- {
		rest = append(rest, groups[i]...)
	}
	return x.out, rest, changed, ok
}

// chunk is text still to be scanned by the expander: part of the original
// line (with its columns) or a definition's value (all at the column of the
// reference it replaced).
type chunk struct {
	b     []byte
	cols  []int
	fixed int
	off   int
}

func (c *chunk) col(i int) int {
	if c.cols == nil {
		return c.fixed
	}
	return c.cols[i]
}

// expander holds the text already expanded (out) and a stack of chunks still
// to scan, the top one first. Substituting pushes the value instead of
// rewriting the line, so each substitution costs the length of the value,
// not of the line.
type expander struct {
	out     text
	pending []chunk
	size    int // len(out.b) plus the unscanned bytes of pending
}

// peek returns the k-th unscanned byte, or -1 past the end of the line.
func (x *expander) peek(k int) int {
	for i := len(x.pending) - 1; i >= 0; i-- {
		c := &x.pending[i]
		if n := len(c.b) - c.off; k < n {
			return int(c.b[c.off+k])
		} else {
			k -= n
		}
	}
	return -1
}

// copy moves n bytes of the top chunk to the output.
func (x *expander) copy(n int) {
	c := &x.pending[len(x.pending)-1]
	x.out.b = append(x.out.b, c.b[c.off:c.off+n]...)
	if c.cols != nil {
		x.out.cols = append(x.out.cols, c.cols[c.off:c.off+n]...)
	} else {
		for range n {
			x.out.cols = append(x.out.cols, c.fixed)
		}
	}
	c.off += n
}

// skip drops n unscanned bytes, which may span chunks.
func (x *expander) skip(n int) {
	x.size -= n
	for n > 0 {
		c := &x.pending[len(x.pending)-1]
		k := min(n, len(c.b)-c.off)
		c.off += k
		n -= k
		if c.off == len(c.b) {
			x.pending = x.pending[:len(x.pending)-1]
		}
	}
}

func repeatCol(col, n int) []int {
	c := make([]int, n)
	for i := range c {
		c[i] = col
	}
	return c
}

// parseReference looks at the '$' at peek(0). It returns the name, the
// length of the reference, any parameters given inside braces (keepalived
// allows "${_RANDOM 1 10}"), whether braces were used, and whether this is a
// reference at all. A "${" that does not form a reference gives an empty
// name with isRef set.
func parseReference(peek func(int) int) (name string, n int, params string, braces, isRef bool) {
	isId := func(c int) bool { return c >= 0 && isIdent(byte(c)) }
	word := func(k int, ok func(int) bool) (string, int) {
		var w []byte
		for c := peek(k); ok(c); c = peek(k) {
			w = append(w, byte(c))
			k++
		}
		return string(w), k
	}
	c := peek(1)
	if c == '{' {
		if c := peek(2); c < 0 || !isIdentStart(byte(c)) {
			return "", 0, "", true, true
		}
		name, k := word(2, isId)
		params, m := word(k, func(c int) bool { return isId(c) || c == ' ' || c == '\t' })
		if peek(m) != '}' {
			return "", 0, "", true, true
		}
		return name, m + 1, strings.TrimSpace(params), true, true
	}
	if c < 0 || !isIdentStart(byte(c)) {
		return "", 0, "", false, false
	}
	name, k := word(1, isId)
	return name, k, "", false, true
}

// emit turns a fully preprocessed line into tokens, or follows it if it is
// an include directive.
func (p *preprocessor) emit(t text, pos Pos, dir string) {
	if len(t.b) == 0 {
		return
	}
	if kind, arg, ok := parseInclude(t); ok {
		at := pos
		at.Col = t.colAt(0, pos.Col)
		p.include(kind, arg, at, dir)
		return
	}
	toks := tokenize(t, pos, p.ds)
	if len(toks) == 0 {
		return
	}
	p.tokens += len(toks)
	if p.tokens > p.opts.MaxTokens {
		p.ds.fatal(toks[0].Pos, "configuration has more than the limit of %d tokens", p.opts.MaxTokens)
		return
	}
	p.lines = append(p.lines, toks)
}

// parseInclude recognises keepalived's include directives (is_include):
// "include", or "includer", "includem", "includew", "includeb",
// "includea", followed by white space and a glob; the rest of the line is
// the glob, not split into words.
func parseInclude(t text) (kind byte, arg text, ok bool) {
	b := t.b
	if !bytes.HasPrefix(b, []byte("include")) || len(b) < 8 {
		return 0, text{}, false
	}
	i := 8
	switch {
	case isSpace(b[7]):
	case len(b) > 8 && strings.IndexByte("rmwba", b[7]) >= 0 && isSpace(b[8]):
		kind, i = b[7], 9
	default:
		return 0, text{}, false
	}
	for i < len(b) && isBlank(b[i]) {
		i++
	}
	return kind, t.slice(i, len(b)), true
}

// Include strictness, from keepalived's include_t: which problems are errors
// rather than warnings for the include variants.
const (
	incRead     = 1 << iota // unreadable, directory or executable file
	incMatch                // no file matches a pattern without wildcards
	incWildcard             // no file matches a pattern with wildcards
	incBrace                // a brace alternative matches nothing
)

func includeFlags(kind byte) int {
	switch kind {
	case 'r':
		return incRead
	case 'm':
		return incRead | incMatch
	case 'w':
		return incRead | incMatch | incWildcard
	case 'b':
		return incRead | incBrace
	case 'a':
		return incRead | incMatch | incWildcard | incBrace
	}
	return 0
}

func sev(flags, want int) Severity {
	if flags&want != 0 {
		return Error
	}
	return Warning
}

// include reads the files matching a glob. A relative glob is relative to
// the directory of the including file (keepalived chdir()s into it), and
// braces expand as with glob(3)'s GLOB_BRACE. With plain "include" a
// pattern matching nothing is only logged by keepalived, so it is a
// warning here; the stricter variants make it an error.
func (p *preprocessor) include(kind byte, arg text, at Pos, dir string) {
	flags := includeFlags(kind)
	pattern := string(arg.b)
	if pattern == "" {
		p.ds.add(at, Error, "include without a file name")
		return
	}
	if len(p.stack) > p.opts.MaxIncludeDepth {
		p.ds.add(at, Error, "includes nested more than %d deep", p.opts.MaxIncludeDepth)
		return
	}
	if strings.Count(pattern, "{") > maxBraces {
		p.ds.add(at, Error, "include %q: more than %d braces", pattern, maxBraces)
		return
	}
	alts, ok := expandBraces(pattern, maxBraceAlternatives)
	if !ok {
		p.ds.add(at, Error, "include %q: brace expansion gives more than %d patterns", pattern, maxBraceAlternatives)
		return
	}
	var matches []string
	missing := 0
	for _, alt := range alts {
		if !filepath.IsAbs(alt) {
			alt = filepath.Join(dir, alt)
		}
		m, err := filepath.Glob(alt)
		if err != nil {
			p.ds.add(at, Error, "include %q: bad pattern: %v", pattern, err)
			return
		}
		if len(m) == 0 {
			missing++
		}
		matches = append(matches, m...)
	}
	wild := hasWildcard(pattern)
	switch {
	case len(matches) == 0 && wild:
		p.ds.add(at, sev(flags, incWildcard), "include %q: no config files matched", pattern)
		return
	case len(matches) == 0:
		p.ds.add(at, sev(flags, incMatch), "include %q: config file missing", pattern)
		return
	case missing > 0:
		p.ds.add(at, sev(flags, incBrace), "include %q: some config files missing", pattern)
	}
	for _, m := range matches {
		if p.ds.stopped {
			return
		}
		p.includeFile(m, flags, at)
	}
}

func (p *preprocessor) includeFile(path string, flags int, at Pos) {
	info, err := os.Stat(path)
	if err != nil {
		p.ds.add(at, sev(flags, incRead), "include %s: %v", path, err)
		return
	}
	if !info.Mode().IsRegular() || info.Mode()&0o111 != 0 {
		// check_glob_file(): directories and executables are skipped.
		p.ds.add(at, sev(flags, incRead), "include %s: not a regular non-executable file, skipped", path)
		return
	}
	for i, f := range p.stack {
		if f.info != nil && os.SameFile(f.info, info) {
			chain := make([]string, 0, len(p.stack)-i+1)
			for _, g := range p.stack[i:] {
				chain = append(chain, g.name)
			}
			chain = append(chain, path)
			p.ds.add(at, Error, "include cycle: %s", strings.Join(chain, " includes "))
			return
		}
	}
	p.files++
	if p.files > p.opts.MaxIncludes {
		p.ds.fatal(at, "more than %d included files", p.opts.MaxIncludes)
		return
	}
	src, info, ok := p.read(path, at)
	if !ok {
		return
	}
	from := at
	p.stack = append(p.stack, openFile{path, info})
	p.file(path, src, &from)
	p.stack = p.stack[:len(p.stack)-1]
}

func hasWildcard(s string) bool { return strings.ContainsAny(s, "*?[{") }

// expandBraces expands "{a,b}" alternatives like glob(3) with GLOB_BRACE:
// nested braces are allowed, '\' escapes the next character, and a '{'
// without its matching '}' is literal. ok is false when there would be more
// than max results.
func expandBraces(s string, max int) ([]string, bool) {
	open := -1
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			continue
		}
		if s[i] == '{' {
			open = i
			break
		}
	}
	if open < 0 {
		return []string{s}, true
	}
	// Find the matching '}' and the top-level commas.
	depth := 0
	commas := []int{}
	closeAt := -1
scan:
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				closeAt = i
				break scan
			}
		case ',':
			if depth == 1 {
				commas = append(commas, i)
			}
		}
	}
	if closeAt < 0 {
		return []string{s}, true
	}
	prefix, suffix := s[:open], s[closeAt+1:]
	var out []string
	start := open + 1
	for _, end := range append(commas, closeAt) {
		sub, ok := expandBraces(prefix+s[start:end]+suffix, max-len(out))
		if !ok {
			return nil, false
		}
		out = append(out, sub...)
		if len(out) > max {
			return nil, false
		}
		start = end + 1
	}
	return out, true
}

// loop runs keepalived's ~SEQ and ~LST (add_seq, add_lst). The rest of the
// line after the closing ')' is processed once per value with the loop
// variable defined; the variable stays defined afterwards, as in keepalived.
//
//	~SEQ(var, end)               1..end, or -1..end (step -1) when end < 1
//	~SEQ(var, start, end)        step 1 or -1
//	~SEQ(var, start, step, end)
//	~SEQx(...)                   values in hexadecimal (non-negative only)
//	~LST(var, v1, v2, ...)
//	~LST({a, b}, {1, 2}, {3})    several variables; missing values are empty
func (p *preprocessor) loop(t text, pos Pos, dir string, level int) {
	at := pos
	at.Col = t.colAt(0, pos.Col)
	var names []string
	var sets [][]string
	var body int
	var err string
	if t.b[1] == 'S' {
		names, sets, body, err = p.parseSeq(t.b, at)
	} else {
		names, sets, body, err = parseLst(t.b, p.opts.MaxLoopIterations)
	}
	if err != "" {
		p.ds.add(at, Error, "invalid %s: %s", t.b[:4], err)
		return
	}
	for body < len(t.b) && isBlank(t.b[body]) {
		body++
	}
	rest := t.slice(body, len(t.b))
	bodyPos := pos
	bodyPos.Col = rest.colAt(0, pos.Col)
	for _, set := range sets {
		if p.ds.stopped {
			return
		}
		n := len(rest.b)
		for i, name := range names {
			n += len(set[i])
			if p.setDefinition(name, set[i], at) == nil {
				return
			}
		}
		if !p.charge(n+lineCost, at) {
			return
		}
		p.line(rest, false, bodyPos, dir, level+1)
	}
}

// parseSeq parses "~SEQ(var, ...)" or "~SEQx(...)". Its numeric arguments may
// use $definitions, and are read like strtol(…, 0): decimal, 0x hex or
// leading-0 octal, an empty argument being 0.
func (p *preprocessor) parseSeq(b []byte, at Pos) (names []string, sets [][]string, body int, err string) {
	i := 4
	hex := i < len(b) && b[i] == 'x'
	if hex {
		i++
	}
	for i < len(b) && isBlank(b[i]) {
		i++
	}
	if i == len(b) || b[i] != '(' {
		return nil, nil, 0, "missing '('"
	}
	i++
	for i < len(b) && isBlank(b[i]) {
		i++
	}
	v := i
	for i < len(b) && isIdent(b[i]) {
		i++
	}
	name := string(b[v:i])
	if name == "" || !isIdentStart(name[0]) {
		return nil, nil, 0, "the loop variable must be a name"
	}
	for i < len(b) && isBlank(b[i]) {
		i++
	}
	if i == len(b) || b[i] != ',' {
		return nil, nil, 0, "expected ',' after the loop variable"
	}
	i++
	closeAt := bytes.IndexByte(b[i:], ')')
	if closeAt < 0 {
		return nil, nil, 0, "missing ')'"
	}
	closeAt += i
	args := b[i:closeAt]
	if bytes.IndexByte(args, '$') >= 0 {
		t := text{b: args, cols: repeatCol(at.Col, len(args))}
		first, rest, _, ok := p.expand(t, at)
		if !ok {
			return nil, nil, 0, "cannot expand its arguments"
		}
		if len(rest) > 0 {
			return nil, nil, 0, "an argument is a multi-line definition"
		}
		args = first.b
	}
	parts := strings.Split(string(args), ",")
	if len(parts) > 3 {
		return nil, nil, 0, "too many arguments"
	}
	nums := make([]int64, len(parts))
	for k, s := range parts {
		n, ok := parseLong(s)
		if !ok {
			return nil, nil, 0, fmt.Sprintf("%q is not a number", strings.TrimSpace(s))
		}
		nums[k] = n
	}
	var start, step, end int64
	switch len(nums) {
	case 1:
		end = nums[0]
		step, start = 1, 1
		if end < 1 {
			step = -1
		}
		if end < 0 {
			start = -1
		}
	case 2:
		start, end = nums[0], nums[1]
		step = 1
		if start > end {
			step = -1
		}
	case 3:
		start, step, end = nums[0], nums[1], nums[2]
		if step == 0 || start < end && step < 0 || start > end && step > 0 {
			return nil, nil, 0, "the step does not lead from start to end"
		}
	}
	if hex && (start < 0 || end < 0) {
		return nil, nil, 0, "~SEQx only takes non-negative numbers"
	}
	// Count in unsigned arithmetic: end-start may overflow int64.
	var count uint64
	if step > 0 {
		count = (uint64(end)-uint64(start))/uint64(step) + 1
	} else {
		count = (uint64(start)-uint64(end))/uint64(-step) + 1
	}
	if count == 0 || count > uint64(p.opts.MaxLoopIterations) {
		// count is 0 when the full int64 range wrapped round.
		n := new(big.Int).SetUint64(count - 1)
		n.Add(n, big.NewInt(1))
		return nil, nil, 0, fmt.Sprintf("it would produce %s lines, more than the limit of %d", n, p.opts.MaxLoopIterations)
	}
	sets = make([][]string, 0, count)
	for k, n := uint64(0), start; k < count; k, n = k+1, n+step {
		s := strconv.FormatInt(n, 10)
		if hex {
			s = strconv.FormatInt(n, 16)
		}
		sets = append(sets, []string{s})
	}
	return []string{name}, sets, closeAt + 1, ""
}

// parseLong reads a number like strtol with base 0.
func parseLong(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, true
	}
	neg := false
	if s[0] == '+' || s[0] == '-' {
		neg = s[0] == '-'
		s = s[1:]
	}
	base := 10
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if s == "" || strings.ContainsAny(s, "+-_") {
		return 0, false
	}
	u, err := strconv.ParseUint(s, base, 64)
	if err != nil {
		return 0, false
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return int64(-u), true
	}
	if u > 1<<63-1 {
		return 0, false
	}
	return int64(u), true
}

// parseLst parses "~LST(var, v1, v2, ...)" and "~LST({a, b}, {1, 2}, ...)".
// Names and values end at blanks, ',', '}' and ')', as in add_lst().
func parseLst(b []byte, max int) (names []string, sets [][]string, body int, err string) {
	i := 4
	skip := func() {
		for i < len(b) && isBlank(b[i]) {
			i++
		}
	}
	word := func() string {
		s := i
		for i < len(b) && !isBlank(b[i]) && strings.IndexByte(",})", b[i]) < 0 {
			i++
		}
		return string(b[s:i])
	}
	// list reads "x" or "{x, y, ...}"; in the first form it stops at the
	// ',' or ')' that follows x.
	list := func() ([]string, string) {
		skip()
		if i < len(b) && b[i] == '{' {
			i++
			var l []string
			for {
				skip()
				l = append(l, word())
				skip()
				if i == len(b) {
					return nil, "missing '}'"
				}
				if b[i] == '}' {
					i++
					skip()
					return l, ""
				}
				if b[i] != ',' {
					return nil, fmt.Sprintf("unexpected %q", b[i])
				}
				i++
			}
		}
		return []string{word()}, ""
	}
	skip()
	if i == len(b) || b[i] != '(' {
		return nil, nil, 0, "missing '('"
	}
	i++
	names, err = list()
	if err != "" {
		return nil, nil, 0, err
	}
	for _, n := range names {
		if n == "" || !isIdentStart(n[0]) || strings.IndexFunc(n, func(r rune) bool { return r > 127 || !isIdent(byte(r)) }) >= 0 {
			return nil, nil, 0, fmt.Sprintf("%q is not a variable name", n)
		}
	}
	skip()
	if i == len(b) || b[i] != ',' {
		return nil, nil, 0, "expected ',' after the variables"
	}
	i++
	for {
		vals, err := list()
		if err != "" {
			return nil, nil, 0, err
		}
		if len(vals) > len(names) {
			return nil, nil, 0, "a value set has more values than there are variables"
		}
		for len(vals) < len(names) {
			vals = append(vals, "")
		}
		sets = append(sets, vals)
		if len(sets) > max {
			return nil, nil, 0, fmt.Sprintf("more than the limit of %d values", max)
		}
		skip()
		if i == len(b) {
			return nil, nil, 0, "missing ')'"
		}
		if b[i] == ')' {
			return names, sets, i + 1, ""
		}
		if b[i] != ',' {
			return nil, nil, 0, fmt.Sprintf("unexpected %q", b[i])
		}
		i++
	}
}
