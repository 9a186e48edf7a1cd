package syntax

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// diag renders a diagnostic without its file name, for comparison.
func diag(d Diagnostic) string {
	return fmt.Sprintf("%d:%d %s: %s", d.Pos.Line, d.Pos.Col, d.Severity, d.Msg)
}

func diagStrings(ds Diagnostics) []string {
	var out []string
	for _, d := range ds {
		out = append(out, diag(d))
	}
	return out
}

// checkDiags compares diagnostics with wanted "line:col severity: text"
// prefixes: each want must be a prefix of the diagnostic at the same index.
func checkDiags(t *testing.T, got Diagnostics, want []string) {
	t.Helper()
	gs := diagStrings(got)
	ok := len(gs) == len(want)
	for i := 0; ok && i < len(gs); i++ {
		ok = strings.HasPrefix(gs[i], want[i])
	}
	if !ok {
		t.Errorf("diagnostics:\n got %q\nwant %q", gs, want)
	}
}

type parseCase struct {
	name  string
	id    string
	src   string
	want  string   // dumpNodes output
	diags []string // prefixes of diag(), in order
}

func runParseCases(t *testing.T, cases []parseCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ns, ds := ParseBytes("t.conf", []byte(c.src), Options{ConfigID: c.id})
			if d := cmp.Diff(c.want, dumpNodes(ns)); d != "" {
				t.Errorf("tree (-want +got):\n%s", d)
			}
			checkDiags(t, ds, c.diags)
		})
	}
}

func TestLexer(t *testing.T) {
	runParseCases(t, []parseCase{
		{name: "hash comment mid word", src: "auth_pass abc#1\n", want: "auth_pass abc\n"},
		{name: "bang comment", src: "a b ! c d\n! whole line\n# whole line\n", want: "a b\n"},
		{name: "escaped comment chars", src: `auth_pass abc\#1\!x` + "\n", want: "auth_pass abc#1!x\n"},
		{name: "comment chars in quotes", src: `script "/bin/x #1 !2"` + "\n", want: `script "/bin/x #1 !2"` + "\n"},
		{name: "quoted escapes", src: `a "x \"y\" \\ \n"` + "\n", want: "a " + fmt.Sprintf("%q", `x "y" \ \n`) + "\n"},
		{name: "quote inside word splits", src: `abc"def ghi"jkl` + "\n", want: `abc "def ghi" jkl` + "\n"},
		{name: "empty quoted", src: `a "" b` + "\n", want: `a "" b` + "\n"},
		{name: "quoted braces are text", src: `a "{" "}"` + "\n", want: `a "{" "}"` + "\n"},
		{name: "backslash outside quotes", src: `a b\c \"d e\ f\{g` + "\n", want: `a b\c \"d e\ f\ {` + "\n  g\n}\n", diags: []string{"1:16 error: '{' is never closed"}},
		{name: "tabs and odd white space", src: "\t \tkw\t1\f2\v3 \t\n", want: "kw 1 2 3\n"},
		{name: "crlf", src: "a {\r\n  b 1\r\n}\r\n", want: "a {\n  b 1\n}\n"},
		{name: "no final newline", src: "a 1", want: "a 1\n"},
		{name: "blank and comment lines", src: "\n\n   \n\t# x\na\n", want: "a\n"},
		{name: "glued braces", src: "virtual_ipaddress {1.2.3.4}\n", want: "virtual_ipaddress {\n  1.2.3.4\n}\n"},
		{name: "one-line block", src: "a { b 1 c }\n", want: "a {\n  b 1 c\n}\n"},
		{
			name:  "unterminated quote",
			src:   "a 1\nscript \"/bin/x y\n",
			want:  "a 1\nscript \"/bin/x y\"\n",
			diags: []string{"2:8 error: unterminated quoted string"},
		},
		{
			name:  "unterminated quote swallows comment",
			src:   "a \"b # c\n",
			want:  "a \"b # c\"\n",
			diags: []string{"1:3 error: unterminated quoted string"},
		},
		{
			name:  "continuation outside definitions",
			src:   "a b \\\nc\n",
			want:  "a b\nc\n",
			diags: []string{"1:4 error: a '\\' at the end of a line only continues $definitions"},
		},
		{
			name:  "embedded NUL ignores the line",
			src:   "a 1\nb \x00 2\nc 3\n",
			want:  "a 1\nc 3\n",
			diags: []string{"2:3 error: embedded NUL byte; line ignored"},
		},
	})
}

func TestTokenPositions(t *testing.T) {
	src := "  kw\t\"a b\"  x{y}\r\n\t@high v\n$V=val\n  z $V ${V}\n$M=m1 \\\n m2\n@high  $M\n~SEQ(i,1) s $i\n"
	ns, ds := ParseBytes("p.conf", []byte(src), Options{ConfigID: "high"})
	if len(ds) != 0 {
		t.Fatalf("diagnostics: %v", ds)
	}
	type tp struct {
		Text      string
		Line, Col int
	}
	var got []tp
	var walk func([]*Node)
	walk = func(ns []*Node) {
		for _, n := range ns {
			for _, tok := range append([]Token{n.Keyword}, n.Args...) {
				if tok.Pos.File != "p.conf" {
					t.Errorf("%q: file %q", tok.Text, tok.Pos.File)
				}
				got = append(got, tp{tok.Text, tok.Pos.Line, tok.Pos.Col})
			}
			walk(n.Block)
		}
	}
	walk(ns)
	want := []tp{
		{"kw", 1, 3}, {"a b", 1, 6}, {"x", 1, 13},
		{"y", 1, 15},
		{"v", 2, 8},
		{"z", 4, 3}, {"val", 4, 5}, {"val", 4, 8},
		{"m1", 7, 8}, {"m2", 7, 8},
		{"s", 8, 11}, {"1", 8, 13},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("positions (-want +got):\n%s", d)
	}
}

func TestConditionals(t *testing.T) {
	src := "@high priority 170\n@low priority 85\n@^high state BACKUP\n@^low state MASTER\n\t@high   a {\n@high\n@\n@^ x\nb\n}\n"
	runParseCases(t, []parseCase{
		{name: "high", id: "high", src: src, want: "priority 170\nstate MASTER\na {\n  x\n  b\n}\n"},
		{name: "low", id: "low", src: src, want: "priority 85\nstate BACKUP\nx\nb\n", diags: []string{"10:1 error: '}' without a matching '{'"}},
		// An empty ConfigID matches no @ID, and "@^ x" has an empty ID,
		// which then matches.
		{name: "none", id: "", src: src, want: "state BACKUP\nstate MASTER\nb\n", diags: []string{"10:1 error: '}'"}},
	})
}

func TestDefinitions(t *testing.T) {
	runParseCases(t, []parseCase{
		{name: "simple", src: "$VIP=10.0.0.1\nvirtual_ipaddress { $VIP }\n", want: "virtual_ipaddress {\n  10.0.0.1\n}\n"},
		{name: "braces and terminators", src: "$A=x\nk $A,$A) ${A}y ${A}\n", want: "k x,x) xy x\n"},
		{name: "value keeps spaces and quotes", src: "$S=  \"a b\" c  # comment\nk $S\n", want: "k \"a b\" c\n"},
		{name: "nested definitions", src: "$A=1\n$B=${A}.${A}\n$C=$B\nk $C\n", want: "k 1.1\n"},
		{name: "redefinition", src: "$A=1\nk $A\n$A=2\nk $A\n", want: "k 1\nk 2\n"},
		{name: "definition expands at use", src: "$B=$A\n$A=1\nk $B\n", want: "k 1\n"},
		{name: "empty value", src: "$E=\nk a${E}b $E\n", want: "k ab\n"},
		{name: "hash and bang quoted", src: "k \"a${_HASH}b${_BANG}\"\n", want: "k \"a#b!\"\n"},
		{
			// read_line() decomments again after expanding.
			name:  "hash outside quotes cuts the line",
			src:   "k a${_HASH}b\n${_BANG} c\n",
			want:  "k a\n",
			diags: []string{"1:4 warning: '#' outside quotes after $expansion starts a comment"},
		},
		{name: "dollar not a reference", src: "k $1 $$ a$ $-\n", want: "k $1 $$ a$ $-\n"},
		{name: "whole line from definition", src: "$L=priority 100\n$L\n", want: "priority 100\n"},
		{name: "block from definition", src: "$O=a {\n$C=}\n$O\nb\n$C\n", want: "a {\n  b\n}\n"},
		{
			name:  "multi-line",
			src:   "$M=a 1 \\\n  b 2  \\\n  c 3\nx {\n  $M\n}\n",
			want:  "x {\n  a 1\n  b 2\n  c 3\n}\n",
			diags: nil,
		},
		{
			name: "multi-line empty first line, comments and blank end",
			src:  "$M=\\\n# comment\n  a 1 \\\n  \\\n  b 2 \\\n\nk $M\n",
			want: "k a 1\nb 2\n",
		},
		{
			name: "multi-line with prefix and nested multi-line",
			src:  "$N=n1 \\\nn2\n$M=m1 \\\n$N\nk $M\n",
			want: "k m1\nn1\nn2\n",
		},
		{
			name: "multi-line holding directives",
			src:  "$M=\\\n$X=7 \\\n~SEQ(i,2) v$i \\\n@high h $X\n$M\n",
			id:   "high",
			want: "v1\nv2\nh 7\n",
		},
		{
			name:  "multi-line not at end of line",
			src:   "$M=a \\\nb\nk $M x\n",
			want:  "",
			diags: []string{"3:3 error: multi-line definition $M must be at the end of its line"},
		},
		{
			name:  "undefined: text, as in keepalived",
			src:   "$USED=1\nauth_pass $PASS\nk \"${NOPE}x\"\n",
			want:  "auth_pass $PASS\nk \"${NOPE}x\"\n",
			diags: []string{"2:11 warning: $PASS is not defined here; left as text", "3:4 warning: $NOPE is not defined here"},
		},
		{
			name:  "use before definition",
			src:   "$A=1\nk $B\n$B=2\nk $B\n",
			want:  "k $B\nk 2\n",
			diags: []string{"2:3 warning: $B is not defined here", "3:1 warning: $B is defined after its use at t.conf:2:3, which keepalived leaves as text"},
		},
		{
			// With no definitions at all, '$' is text, as in keepalived
			// (a shell variable in a script line).
			name: "no definitions: literal",
			src:  "script \"/bin/sh -c 'echo $HOME'\"\n",
			want: "script \"/bin/sh -c 'echo $HOME'\"\n",
		},
		{
			name:  "bad terminator",
			src:   "$IP=10.0.0\nk $IP.1\n",
			want:  "",
			diags: []string{"2:3 error: $IP followed by '.' is not expanded by keepalived; write ${IP}"},
		},
		{
			name:  "parameterised",
			src:   "$F=x\nk $F(a,b) ${F a b}\n",
			want:  "",
			diags: []string{"2:3 error: $F followed by '('", "2:11 error: $F does not take parameters"},
		},
		{
			name:  "built-ins",
			id:    "lb1",
			src:   "k ${_RANDOM 7 7} ${_INSTANCE}\"${_HASH 1}\" \"${_FOO}\"\n",
			want:  "k 7 lb1 \"${_HASH 1}\" \"${_FOO}\"\n",
			diags: []string{"1:31 warning: $_HASH takes no parameters", "1:44 warning: $_FOO is not a keepalived built-in definition"},
		},
		{name: "built-in overridden", src: "$_PWD=/x\nk $_PWD\n", want: "k /x\n"},
		{
			name:  "bad brace reference",
			src:   "k ${ ${1} ${A\n",
			want:  "",
			diags: []string{"1:3 error: '${' without a valid name", "1:6 error: '${'", "1:11 error: '${'"},
		},
		{name: "not a definition", src: "$B=2\n$A =1\n", want: "$A =1\n", diags: []string{"2:1 warning: $A is not defined here"}},
	})
}

func TestLoops(t *testing.T) {
	runParseCases(t, []parseCase{
		{name: "seq end", src: "~SEQ(i, 3) k $i\n", want: "k 1\nk 2\nk 3\n"},
		{name: "seq end zero", src: "~SEQ(i,0) k $i\n", want: "k 1\nk 0\n"},
		{name: "seq end negative", src: "~SEQ(i,-2) k $i\n", want: "k -1\nk -2\n"},
		{name: "seq start end", src: "~SEQ(i,2,4) k $i\n", want: "k 2\nk 3\nk 4\n"},
		{name: "seq down", src: "~SEQ(i,4,2) k $i\n", want: "k 4\nk 3\nk 2\n"},
		{name: "seq step", src: "~SEQ(i,1,3,8) k $i\n", want: "k 1\nk 4\nk 7\n"},
		{name: "seq negative step", src: "~SEQ(i,8,-4,0) k $i\n", want: "k 8\nk 4\nk 0\n"},
		{name: "seq hex", src: "~SEQx(i,9,12) fe80::$i\n", want: "fe80::9\nfe80::a\nfe80::b\nfe80::c\n"},
		{name: "seq number bases", src: "~SEQ(i,0x10,010) k $i\n", want: "k 16\nk 15\nk 14\nk 13\nk 12\nk 11\nk 10\nk 9\nk 8\n"},
		{name: "seq args from definitions", src: "$N=2\n~SEQ(i,$N) k $i\n", want: "k 1\nk 2\n"},
		{name: "seq variable persists", src: "~SEQ(i,2) k\nv $i\n", want: "k\nk\nv 2\n"},
		{name: "seq body in block", src: "a {\n~SEQ(i,2) ip 10.0.0.$i\n}\n", want: "a {\n  ip 10.0.0.1\n  ip 10.0.0.2\n}\n"},
		{name: "nested loops", src: "~SEQ(i,2) ~LST(j,a,b) k ${i}${j}\n", want: "k 1a\nk 1b\nk 2a\nk 2b\n"},
		{name: "loop defines", src: "~LST(v,a,b) $X=$v\nk $X\n", want: "k b\n"},
		{name: "loop body not a definition", src: "~SEQ(i,2) $D$i=x\n", diags: []string{"1:11 warning: $D is not defined here", "1:13 error: $i followed by '='", "1:13 error: $i followed by '='"}},
		{name: "lst", src: "~LST(if, eth0, eth1) interface $if\n", want: "interface eth0\ninterface eth1\n"},
		{name: "lst multi", src: "~LST({a,b}, {1,2}, {3}, 4) k ${a}:$b\n", want: "k 1:2\nk 3:\nk 4:\n"},
		{name: "body with braces", src: "~LST(x,a,b) x_$x { y }\n", want: "x_a {\n  y\n}\nx_b {\n  y\n}\n"},
		{name: "seq from definition", src: "$L=~SEQ(i,2) k $i\n$L\n", want: "k 1\nk 2\n"},
		{name: "seq bad step", src: "~SEQ(i,1,-1,5) k\n", diags: []string{"1:1 error: invalid ~SEQ: the step does not lead from start to end"}},
		{name: "seq zero step", src: "~SEQ(i,1,0,5) k\n", diags: []string{"1:1 error: invalid ~SEQ: the step"}},
		{name: "seq hex negative", src: "~SEQx(i,-1,5) k\n", diags: []string{"1:1 error: invalid ~SEQ: ~SEQx only takes non-negative numbers"}},
		{name: "seq no paren", src: "~SEQ i,1\n", diags: []string{"1:1 error: invalid ~SEQ: missing '('"}},
		{name: "seq no close", src: "~SEQ(i,1 k\n", diags: []string{"1:1 error: invalid ~SEQ: missing ')'"}},
		{name: "seq bad var", src: "~SEQ(1,5) k\n", diags: []string{"1:1 error: invalid ~SEQ: the loop variable must be a name"}},
		{name: "seq not number", src: "~SEQ(i,x) k\n", diags: []string{"1:1 error: invalid ~SEQ: \"x\" is not a number"}},
		{name: "seq too many args", src: "~SEQ(i,1,2,3,4) k\n", diags: []string{"1:1 error: invalid ~SEQ: too many arguments"}},
		{name: "seq out of range", src: "~SEQ(i,99999999999999999999) k\n", diags: []string{"1:1 error: invalid ~SEQ: \"99999999999999999999\" is not a number"}},
		{name: "lst too many values", src: "~LST({a},{1,2}) k\n", diags: []string{"1:1 error: invalid ~LST: a value set has more values"}},
		{name: "lst bad", src: "~LST(a b) k\n", diags: []string{"1:1 error: invalid ~LST: expected ','"}},
		{name: "unknown tilde", src: "~FOO(a) k\n", diags: []string{"1:1 error: unknown preprocessor directive"}},
		{
			name:  "seq bomb",
			src:   "~SEQ(i,1,1,100000000) k $i\nafter\n",
			want:  "after\n",
			diags: []string{"1:1 error: invalid ~SEQ: it would produce 100000000 lines, more than the limit of 65536"},
		},
		{
			name:  "seq extreme range",
			src:   "~SEQ(i,-9223372036854775808,9223372036854775807) k\n",
			diags: []string{"1:1 error: invalid ~SEQ: it would produce 18446744073709551616 lines"},
		},
	})
}

func TestBlocks(t *testing.T) {
	runParseCases(t, []parseCase{
		{name: "brace on next line", src: "vrrp_instance VI_1\n{\n  state MASTER\n}\n", want: "vrrp_instance VI_1 {\n  state MASTER\n}\n"},
		{name: "brace after blank and comment lines", src: "a\n\n# c\n  {\nb\n}\n", want: "a {\n  b\n}\n"},
		{name: "text after close", src: "a { b } c 1\nd {\n} e\n", want: "a {\n  b\n}\nc 1\nd {\n}\ne\n"},
		{name: "value lines", src: "virtual_ipaddress {\n  1.2.3.4/24 dev eth0\n  5.6.7.8\n}\n", want: "virtual_ipaddress {\n  1.2.3.4/24 dev eth0\n  5.6.7.8\n}\n"},
		{name: "empty block", src: "a {}\n", want: "a {\n}\n"},
		{name: "nested", src: "a {\n b {\n  c {\n   d 1\n  }\n }\n}\n", want: "a {\n  b {\n    c {\n      d 1\n    }\n  }\n}\n"},
		{name: "stray close", src: "a 1\n  }\nb 2\n", want: "a 1\nb 2\n", diags: []string{"2:3 error: '}' without a matching '{'"}},
		{name: "unclosed", src: "a {\n  b {\n  }\n", want: "a {\n  b {\n  }\n}\n", diags: []string{"1:3 error: '{' is never closed"}},
		{name: "brace without keyword", src: "{\n a\n}\nb\n", want: "b\n", diags: []string{"1:1 error: '{' without a keyword before it"}},
		{name: "second brace", src: "a { } {\n}\n", want: "a {\n}\n", diags: []string{"1:7 error: '{' without a keyword"}},
	})
}

func TestDeepBraces(t *testing.T) {
	for _, n := range []int{64, 65, 10000, 100000} {
		for _, closed := range []bool{true, false} {
			t.Run(fmt.Sprintf("%d/%v", n, closed), func(t *testing.T) {
				src := "top {\n" + strings.Repeat("a {\n", n-1)
				if closed {
					src += strings.Repeat("}\n", n)
				}
				src += "last\n"
				ns, ds := ParseBytes("deep.conf", []byte(src), Options{})
				switch {
				case n <= 64 && closed:
					if len(ds) != 0 {
						t.Fatalf("unexpected diagnostics %v", ds[0])
					}
				case n <= 64:
					if len(ds) != n || !strings.Contains(ds[0].Msg, "never closed") {
						t.Fatalf("want %d unclosed errors, got %d: %v", n, len(ds), ds[0])
					}
				default:
					if !ds.HasErrors() || ds[0].Msg != "blocks nested more than 64 deep" || ds[0].Pos.Line != 65 {
						t.Fatalf("want a depth error at line 65, got %v", ds)
					}
					if closed && len(ds) != 1 {
						t.Fatalf("want one error, got %v", ds)
					}
					if !closed && len(ds) != 1+64 {
						t.Fatalf("want depth error and 64 unclosed, got %d", len(ds))
					}
				}
				if closed {
					if len(ns) != 2 || ns[1].Keyword.Text != "last" {
						t.Fatalf("want top and last, got %s", dumpNodes(ns)[:min(200, len(dumpNodes(ns)))])
					}
				}
			})
		}
	}
}

func TestLimits(t *testing.T) {
	bomb := "$A0=xxxxxxxxxxxxxxxx\n"
	for i := 1; i <= 20; i++ {
		bomb += fmt.Sprintf("$A%d=${A%d}${A%d}${A%d}${A%d}\n", i, i-1, i-1, i-1, i-1)
	}
	bomb += "k $A20\n"
	cases := []struct {
		name string
		src  string
		opts Options
		want []string
	}{
		{name: "definition bomb", src: bomb, want: []string{"makes the line longer than the limit of 65536 bytes"}},
		{name: "definition bomb spread over lines", src: strings.Replace(bomb, "k $A20\n", strings.Repeat("k $A5\n", 1000), 1), want: []string{"error: $expansion and ~SEQ/~LST produce more than the limit of 8388608 bytes"}},
		{name: "self reference", src: "$A=$A\nk $A\n", want: []string{"2:3 error: more than 65536 $substitutions on one line"}},
		{name: "mutual reference", src: "$A=${B}\n$B=${A}\nk $A\n", want: []string{"3:3 error: more than 65536 $substitutions"}},
		{name: "multi-line self reference", src: "$M=\\\n$M\n\n$M\n", want: []string{"4:1 error: ~SEQ/~LST loops or multi-line definitions nested more than 16 deep"}},
		{name: "multi-line self reference with text", src: "$M=a \\\nk $M\n\n$M\n", want: []string{"4:1 error: ~SEQ/~LST loops or multi-line definitions nested more than 16 deep"}},
		{name: "nested seq bomb", src: "~SEQ(i,60000) ~SEQ(j,60000) k $i $j\n", want: []string{"error: $expansion and ~SEQ/~LST produce more than the limit of 8388608 bytes"}},
		{name: "loop nesting", src: strings.Repeat("~SEQ(i,1) ", 20) + "k\n", want: []string{"1:171 error: ~SEQ/~LST loops or multi-line definitions nested more than 16 deep"}},
		{name: "long line", src: "k " + strings.Repeat("x", 100) + "\nb\n", opts: Options{MaxLineLength: 50}, want: []string{"1:1 error: line is 102 bytes, more than the limit of 50; line ignored"}},
		{name: "tokens", src: "a b c\nd e f\n", opts: Options{MaxTokens: 4}, want: []string{"2:1 error: configuration has more than the limit of 4 tokens"}},
		{name: "definitions", src: "$A=1\n$A=2\n~SEQ(i,1) $B=1\n", opts: Options{MaxDefinitions: 8}, want: []string{"3:11 error: more than 8 $definitions"}},
		{name: "loop limit option", src: "~LST(i,a,b,c) k\n", opts: Options{MaxLoopIterations: 2}, want: []string{"1:1 error: invalid ~LST: more than the limit of 2 values"}},
		{name: "diagnostics", src: strings.Repeat("}\n", 20), opts: Options{MaxDiagnostics: 5}, want: []string{"1:1", "2:1", "3:1", "4:1", "5:1", "6:1 error: too many diagnostics (5), giving up"}},
		{name: "file size", src: "a b c d e f\n", opts: Options{MaxFileSize: 5}, want: []string{"0:0 error: file is 12 bytes, more than the limit of 5"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, ds := ParseBytes("l.conf", []byte(c.src), c.opts)
			gs := diagStrings(ds)
			if len(gs) != len(c.want) {
				t.Fatalf("got %d diagnostics %q, want %d", len(gs), gs[:min(len(gs), 12)], len(c.want))
			}
			for i, w := range c.want {
				if !strings.Contains(gs[i], w) {
					t.Errorf("diagnostic %d: got %q, want it to contain %q", i, gs[i], w)
				}
			}
		})
	}
}

// TestAdversarial feeds inputs built to exhaust memory or time with the
// default limits: each must end quickly with an error (or, for plain bulk,
// parse).
func TestAdversarial(t *testing.T) {
	if testing.Short() {
		t.Skip("large inputs")
	}
	bomb := "$A=${B}${B}${B}${B}${B}${B}${B}${B}\n$B=${C}${C}${C}${C}${C}${C}${C}${C}\n$C=${D}${D}${D}${D}${D}${D}${D}${D}\n$D=" + strings.Repeat("x", 60) + "\n"
	for _, c := range []struct{ name, src, want string }{
		{"self reference on every line", "$A=$A\n" + strings.Repeat("k $A\n", 1<<20), "$expansion and ~SEQ/~LST produce more than the limit"},
		{"definition bomb on every line", bomb + strings.Repeat("k $A\n", 1<<20), "$expansion and ~SEQ/~LST produce more than the limit"},
		{"undefined references", "$D=1\n" + strings.Repeat("k $X $Y $Z\n", 1<<20), "too many diagnostics (1000), giving up"},
		{"nested loops", strings.Repeat("~SEQ(i,65536) ~SEQ(j,65536) k\n", 1000), "$expansion and ~SEQ/~LST produce more than the limit"},
		{"huge multi-line definition", "$M=\\\n" + strings.Repeat("x\\\n", 4<<20) + "\n" + strings.Repeat("$M\n", 100), "$expansion and ~SEQ/~LST produce more than the limit"},
		{"many lines", strings.Repeat("a\n", 8<<20-1), "configuration has more than the limit of 1048576 tokens"},
		{"one long line", strings.Repeat("{", 16<<20-1), "line is 16777215 bytes, more than the limit of 65536; line ignored"},
		{"empty lines", strings.Repeat("\n", 16<<20-1), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			_, ds := ParseBytes("a.conf", []byte(c.src), Options{})
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("took %v", d)
			}
			switch {
			case c.want == "" && len(ds) != 0:
				t.Errorf("unexpected diagnostics %v", ds[0])
			case c.want != "" && (len(ds) == 0 || !strings.Contains(ds[len(ds)-1].Msg, c.want)):
				t.Errorf("got %d diagnostics %v, want the last to contain %q", len(ds), ds[max(0, len(ds)-1):], c.want)
			}
		})
	}
}
