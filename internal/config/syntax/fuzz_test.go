package syntax

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fuzzSeeds are inputs exercising every rule, shared by the fuzz targets.
var fuzzSeeds = []string{
	"vrrp_instance VI_1 {\n  state MASTER\n  virtual_ipaddress {1.2.3.4/24 dev eth0}\n} x\n",
	"auth_pass abc#1 \\#2 \"q # \\\" \\\\ x\" a\"b c\"d\r\n! c\n",
	"@high a\n@^high b\n@ c\n@^",
	"$A=1\n$B=${A}$A,\n$M=x \\\n y \\\n\n k $M\n$M\n",
	"~SEQ(i,1,3) ~LST({a,b},{1,2},{3}) k ${i}$a $b\n~SEQx(j,0x10,2,020) v $j\n",
	"a\n{\n}\n}\n{\n{{{{",
	"include *.conf\ninclude {a,b}.conf\nincludea nope\n",
	"$A=$A\nk $A\n$X=${X}${X}\nk $X\n",
	"k \x00 x\n\xff\xfe\"\n",
	"k ${_RANDOM 1 9} ${_RANDOM} $_INSTANCE \"${_HASH}\" a${_BANG}b ${_PWD} ${_ENV X} ${_FOO} ${_PWD 1} ${_RANDOM a}\n" +
		"$A=a # c \\\n b \\ \n\nk $A $U\n$U=1\n${_HASH} k\n",
}

func FuzzLex(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for n, line := range lines(data) {
			txt, _ := decomment(line)
			if len(txt.b) != len(txt.cols) {
				t.Fatalf("line %d: %d bytes, %d columns", n, len(txt.b), len(txt.cols))
			}
			ds := &diagSink{max: 100}
			toks := tokenize(txt, Pos{File: "f", Line: n}, ds)
			prev := 0
			for _, tok := range toks {
				if tok.Pos.Col < 1 || tok.Pos.Col > len(line) || tok.Pos.Col < prev {
					t.Fatalf("line %q: token %q at column %d after %d", line, tok.Text, tok.Pos.Col, prev)
				}
				prev = tok.Pos.Col
				if !tok.Quoted && (tok.Text == "" || strings.ContainsAny(tok.Text, " \t\r\n\f\v") ||
					len(tok.Text) > 1 && strings.ContainsAny(tok.Text, "{}") ||
					strings.Count(tok.Text, "\"") != strings.Count(tok.Text, "\\\"")) {
					t.Fatalf("line %q: bad word %q", line, tok.Text)
				}
			}
			for _, d := range ds.list {
				if d.Pos.Col < 1 || d.Pos.Col > len(line) {
					t.Fatalf("line %q: diagnostic at column %d", line, d.Pos.Col)
				}
			}
		}
	})
}

// fuzzOptions keep each run fast while still reaching every limit.
var fuzzOptions = Options{
	ConfigID: "high",
	Random:   func(lo, _ uint64) uint64 { return lo },
	// The environment would let ${_ENV NAME} name files outside the
	// fuzzers' directory in include lines.
	Getenv:            func(string) string { return "" },
	MaxExpansion:      1 << 18,
	MaxLoopIterations: 1000,
	MaxTokens:         1 << 16,
	MaxDepth:          16,
	MaxDiagnostics:    200,
}

// checkTree checks invariants every parse result must satisfy.
func checkTree(t *testing.T, ns []*Node, ds Diagnostics, opts Options) {
	t.Helper()
	type item struct {
		n     *Node
		depth int
	}
	var stack []item
	for _, n := range ns {
		stack = append(stack, item{n, 1})
	}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if it.depth > opts.MaxDepth+1 {
			t.Fatalf("node %q at depth %d", it.n.Keyword.Text, it.depth)
		}
		if !it.n.HasBlock && len(it.n.Block) > 0 {
			t.Fatalf("node %q has a block without HasBlock", it.n.Keyword.Text)
		}
		for _, tok := range append([]Token{it.n.Keyword}, it.n.Args...) {
			if tok.Pos.File == "" || tok.Pos.Line < 1 || tok.Pos.Col < 1 {
				t.Fatalf("token %q at %v", tok.Text, tok.Pos)
			}
			if !tok.Quoted && (tok.Text == "{" || tok.Text == "}") {
				t.Fatalf("brace token %v in a node", tok.Pos)
			}
		}
		for _, c := range it.n.Block {
			stack = append(stack, item{c, it.depth + 1})
		}
	}
	if len(ds) > opts.MaxDiagnostics+1 {
		t.Fatalf("%d diagnostics", len(ds))
	}
	for _, d := range ds {
		if d.Pos.File == "" || d.Msg == "" {
			t.Fatalf("bad diagnostic %#v", d)
		}
	}
}

func FuzzParseBytes(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		// Includes stay in the empty temporary directory: a '/' could name
		// any file of the machine.
		if bytes.IndexByte(data, '/') >= 0 {
			return
		}
		ns, ds := ParseBytes(filepath.Join(dir, "fuzz.conf"), data, fuzzOptions)
		checkTree(t, ns, ds, fuzzOptions)
	})
}

// FuzzPreprocess runs the preprocessor with includes of a small directory
// of files that include each other (with a cycle).
func FuzzPreprocess(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte("include sub/c.conf\nincludew *.conf\n"))
	dir := f.TempDir()
	for name, content := range map[string]string{
		"a.conf":     "$A=a\na $A {\ninclude b.conf\n}\n",
		"b.conf":     "~SEQ(i,3) b $i\ninclude sub/c.conf\n",
		"sub/c.conf": "@high c {\n$M=x \\\ny\n}\ninclude ../a.conf\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Only "sub/" may name a directory, so includes stay in dir.
		if bytes.Count(data, []byte("/")) != bytes.Count(data, []byte("sub/")) || bytes.Contains(data, []byte("sub/.")) {
			return
		}
		ns, ds := ParseBytes(filepath.Join(dir, "main.conf"), data, fuzzOptions)
		checkTree(t, ns, ds, fuzzOptions)
	})
}

// TestGarbage feeds random bytes, NULs included, to the parser: it must not
// panic, must stay fast, and must reject every line holding a NUL, as
// keepalived does.
func TestGarbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab $~@{}\"\\#!\n\r\t\x00(),=SEQLSTx0129")
	start := time.Now()
	for i := range 2000 {
		data := make([]byte, rng.IntN(2048))
		for j := range data {
			if i%2 == 0 {
				data[j] = byte(rng.UintN(256))
			} else {
				data[j] = alphabet[rng.IntN(len(alphabet))]
			}
		}
		data = bytes.ReplaceAll(data, []byte("/"), []byte("-"))
		ns, ds := ParseBytes(filepath.Join(t.TempDir(), "g.conf"), data, fuzzOptions)
		checkTree(t, ns, ds, fuzzOptions)
		nulLines := map[int]bool{}
		for n, l := range lines(data) {
			if bytes.IndexByte(l, 0) >= 0 {
				nulLines[n] = true
			}
		}
		for _, d := range ds {
			if d.Msg == "embedded NUL byte; line ignored" {
				delete(nulLines, d.Pos.Line)
			}
		}
		if len(nulLines) > 0 && len(ds) <= fuzzOptions.MaxDiagnostics {
			t.Fatalf("input %d: lines with NULs not reported: %v", i, nulLines)
		}
	}
	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("2000 random inputs took %v", d)
	}
}
