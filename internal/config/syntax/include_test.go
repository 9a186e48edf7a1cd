package syntax

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// writeFiles creates files (name → content) under dir; names may hold
// subdirectories. A name ending in "*" is made executable (without the *).
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, "*") {
			name, mode = strings.TrimSuffix(name, "*"), 0o755
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func TestIncludes(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string // "main.conf" is parsed; "ABS" in content is the temp dir
		id    string
		want  string
		diags []string // "file:line:col severity: text" prefixes, file relative to the temp dir
	}{
		{
			name:  "relative",
			files: map[string]string{"main.conf": "a 1\ninclude sub/x.conf\nb 2\n", "sub/x.conf": "x 1\n"},
			want:  "a 1\nx 1\nb 2\n",
		},
		{
			name:  "relative to the including file",
			files: map[string]string{"main.conf": "include sub/x.conf\n", "sub/x.conf": "include y.conf\n", "sub/y.conf": "y 1\n", "y.conf": "wrong\n"},
			want:  "y 1\n",
		},
		{
			name:  "absolute",
			files: map[string]string{"main.conf": "include ABS/other/x.conf\n", "other/x.conf": "x 1\n"},
			want:  "x 1\n",
		},
		{
			name:  "glob in sorted order",
			files: map[string]string{"main.conf": "include conf.d/*.conf\n", "conf.d/b.conf": "b\n", "conf.d/a.conf": "a\n", "conf.d/c.txt": "c\n"},
			want:  "a\nb\n",
		},
		{
			name:  "brace glob in brace order",
			files: map[string]string{"main.conf": "include {z,a}.conf\n", "a.conf": "a\n", "z.conf": "z\n"},
			want:  "z\na\n",
		},
		{
			name:  "nested brace glob with wildcards",
			files: map[string]string{"main.conf": "include d/{v{1,2},x*}.conf\n", "d/v1.conf": "v1\n", "d/v2.conf": "v2\n", "d/xa.conf": "xa\n"},
			want:  "v1\nv2\nxa\n",
		},
		{
			name:  "include inside a block",
			files: map[string]string{"main.conf": "vrrp_instance V {\n  include vips.conf\n}\n", "vips.conf": "virtual_ipaddress {\n 1.2.3.4\n}\n"},
			want:  "vrrp_instance V {\n  virtual_ipaddress {\n    1.2.3.4\n  }\n}\n",
		},
		{
			name:  "include from a definition and conditionally",
			files: map[string]string{"main.conf": "$F=x.conf\ninclude $F\n@h1 include y.conf\n@h2 include z.conf\n", "x.conf": "x\n", "y.conf": "y\n", "z.conf": "z\n"},
			id:    "h1",
			want:  "x\ny\n",
		},
		{
			name:  "definitions cross files",
			files: map[string]string{"main.conf": "include defs.conf\nk $V\n", "defs.conf": "$V=1\n"},
			want:  "k 1\n",
		},
		{
			name:  "included twice is not a cycle",
			files: map[string]string{"main.conf": "include x.conf\ninclude x.conf\n", "x.conf": "x\n"},
			want:  "x\nx\n",
		},
		{
			name:  "missing file is a warning",
			files: map[string]string{"main.conf": "include nope.conf\na\n"},
			want:  "a\n",
			diags: []string{"main.conf:1:1 warning: include \"nope.conf\": config file missing"},
		},
		{
			name:  "missing glob is a warning",
			files: map[string]string{"main.conf": "include nope/*.conf\n"},
			diags: []string{"main.conf:1:1 warning: include \"nope/*.conf\": no config files matched"},
		},
		{
			name:  "strict variants",
			files: map[string]string{"main.conf": "includem nope.conf\nincludew n*.conf\nincludeb {a,nope}.conf\nincluder d\nincludea {a,nope}.conf\n", "a.conf": "a\n", "d/x": ""},
			want:  "a\na\n",
			diags: []string{
				"main.conf:1:1 error: include \"nope.conf\": config file missing",
				"main.conf:2:1 error: include \"n*.conf\": no config files matched",
				"main.conf:3:1 error: include \"{a,nope}.conf\": some config files missing",
				"main.conf:4:1 error: include ",
				"main.conf:5:1 error: include \"{a,nope}.conf\": some config files missing",
			},
		},
		{
			name:  "directories and executables are skipped",
			files: map[string]string{"main.conf": "include d*\n", "d/x": "", "d.sh*": "x\n"},
			diags: []string{"main.conf:1:1 warning: include ", "main.conf:1:1 warning: include "},
		},
		{
			name:  "empty include",
			files: map[string]string{"main.conf": "include \n"},
			want:  "include\n",
		},
		{
			name:  "include without space is a keyword",
			files: map[string]string{"main.conf": "includex y\ninclude\n"},
			want:  "includex y\ninclude\n",
		},
		{
			name:  "direct cycle",
			files: map[string]string{"main.conf": "a\ninclude main.conf\nb\n"},
			want:  "a\nb\n",
			diags: []string{"main.conf:2:1 error: include cycle: ABS/main.conf includes ABS/main.conf"},
		},
		{
			name:  "indirect cycle",
			files: map[string]string{"main.conf": "include x.conf\n", "x.conf": "x\n  include y.conf\n", "y.conf": "y\ninclude x.conf\n"},
			want:  "x\ny\n",
			diags: []string{"y.conf:2:1 error: include cycle: ABS/x.conf includes ABS/y.conf includes ABS/x.conf"},
		},
		{
			name:  "errors in included files",
			files: map[string]string{"main.conf": "a {\ninclude x.conf\n", "x.conf": "b {\n}\n}\n}\n"},
			want:  "a {\n  b {\n  }\n}\n",
			diags: []string{"x.conf:4:1 error: '}' without a matching '{'"},
		},
		{
			name:  "include line with comment",
			files: map[string]string{"main.conf": "include x.conf # the rest\n", "x.conf": "x\n"},
			want:  "x\n",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{}
			for n, s := range c.files {
				files[n] = strings.ReplaceAll(s, "ABS", dir)
			}
			writeFiles(t, dir, files)
			ns, ds := ParseFile(filepath.Join(dir, "main.conf"), Options{ConfigID: c.id})
			if d := cmp.Diff(c.want, dumpNodes(ns)); d != "" {
				t.Errorf("tree (-want +got):\n%s", d)
			}
			var got []string
			for _, d := range ds {
				file := strings.TrimPrefix(strings.TrimPrefix(d.Pos.File, dir), "/")
				got = append(got, file+":"+strings.ReplaceAll(diag(d), dir, "ABS"))
			}
			ok := len(got) == len(c.diags)
			for i := 0; ok && i < len(got); i++ {
				ok = strings.HasPrefix(got[i], c.diags[i])
			}
			if !ok {
				t.Errorf("diagnostics:\n got %q\nwant %q", got, c.diags)
			}
		})
	}
}

// TestIncludedFrom checks the positions of a three-file include chain.
func TestIncludedFrom(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"main.conf":   "top {\n  include a/one.conf\n}\n",
		"a/one.conf":  "one 1\n\t\tinclude ../b/two.conf\n",
		"b/two.conf":  "  two 2 \"x\n",
		"unused.conf": "",
	})
	main := filepath.Join(dir, "main.conf")
	ns, ds := ParseFile(main, Options{})
	incMain := &Pos{File: main, Line: 2, Col: 3}
	one := filepath.Join(dir, "a", "one.conf")
	incOne := &Pos{File: one, Line: 2, Col: 3, IncludedFrom: incMain}
	two := filepath.Join(dir, "a", "..", "b", "two.conf")
	twoPos := func(col int) Pos { return Pos{File: two, Line: 1, Col: col, IncludedFrom: incOne} }
	want := []*Node{{
		Keyword:  Token{Text: "top", Pos: Pos{File: main, Line: 1, Col: 1}},
		HasBlock: true,
		Block: []*Node{
			{Keyword: Token{Text: "one", Pos: Pos{File: one, Line: 1, Col: 1, IncludedFrom: incMain}}, Args: []Token{{Text: "1", Pos: Pos{File: one, Line: 1, Col: 5, IncludedFrom: incMain}}}},
			{Keyword: Token{Text: "two", Pos: twoPos(3)}, Args: []Token{{Text: "2", Pos: twoPos(7)}, {Text: "x", Quoted: true, Pos: twoPos(9)}}},
		},
	}}
	if d := cmp.Diff(want, ns); d != "" {
		t.Errorf("tree (-want +got):\n%s", d)
	}
	if len(ds) != 1 {
		t.Fatalf("want one diagnostic, got %v", ds)
	}
	wantMsg := two + ":1:9: error: unterminated quoted string\n\tincluded from " + one + ":2:3\n\tincluded from " + main + ":2:3"
	if got := ds[0].String(); got != wantMsg {
		t.Errorf("diagnostic:\n got %s\nwant %s", got, wantMsg)
	}
}

func TestIncludeLimits(t *testing.T) {
	t.Run("depth", func(t *testing.T) {
		dir := t.TempDir()
		files := map[string]string{"main.conf": "include f1.conf\n"}
		for i := 1; i <= 10; i++ {
			files["f"+string(rune('0'+i))+".conf"] = "l\ninclude f" + string(rune('0'+i+1)) + ".conf\n"
		}
		writeFiles(t, dir, files)
		ns, ds := ParseFile(filepath.Join(dir, "main.conf"), Options{MaxIncludeDepth: 3})
		if len(ns) != 3 || len(ds) != 1 || ds[0].Msg != "includes nested more than 3 deep" || filepath.Base(ds[0].Pos.File) != "f3.conf" {
			t.Errorf("got %d nodes and %v", len(ns), ds)
		}
	})
	t.Run("count", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"main.conf": "~SEQ(i,10) include x.conf\n", "x.conf": "x\n"})
		ns, ds := ParseFile(filepath.Join(dir, "main.conf"), Options{MaxIncludes: 4})
		if len(ns) != 4 || len(ds) != 1 || ds[0].Msg != "more than 4 included files" {
			t.Errorf("got %d nodes and %v", len(ns), ds)
		}
	})
	t.Run("total size", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"main.conf": "include *.inc\n", "a.inc": "aaaaaaaaaa\n", "b.inc": "bbbbbbbbbb\n"})
		ns, ds := ParseFile(filepath.Join(dir, "main.conf"), Options{MaxTotalSize: 30})
		if len(ns) != 1 || len(ds) != 1 || !strings.Contains(ds[0].Msg, "configuration files total more than the limit of 30 bytes") {
			t.Errorf("got %d nodes and %v", len(ns), ds)
		}
	})
	t.Run("brace alternatives", func(t *testing.T) {
		_, ds := ParseBytes(filepath.Join(t.TempDir(), "m.conf"), []byte("include {a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}\n"), Options{})
		if len(ds) != 1 || !strings.Contains(ds[0].Msg, "brace expansion gives more than 1024 patterns") {
			t.Errorf("got %v", ds)
		}
		_, ds = ParseBytes(filepath.Join(t.TempDir(), "m.conf"), []byte("include "+strings.Repeat("{", 30000)+strings.Repeat("}", 30000)+"\n"), Options{})
		if len(ds) != 1 || !strings.Contains(ds[0].Msg, "more than 64 braces") {
			t.Errorf("got %v", ds)
		}
	})
}

func TestParseFileErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"exec.conf*": "a\n", "d/x": ""})
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, want string }{
		{"missing.conf", "cannot open configuration file"},
		{"exec.conf", "is not a regular non-executable file"},
		{"d", "is a directory"},
		{"fifo", "is not a regular non-executable file"},
	} {
		ns, ds := ParseFile(filepath.Join(dir, c.file), Options{})
		if ns != nil || len(ds) != 1 || !strings.Contains(ds[0].Msg, c.want) || ds[0].Pos.File != filepath.Join(dir, c.file) {
			t.Errorf("%s: got %v, want %q", c.file, ds, c.want)
		}
	}
}

// TestHugeFile checks that a 100 MB file is refused at once, without being
// read, and that ParseBytes refuses as much data too.
func TestHugeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.conf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte("virtual_ipaddress { 10.0.0.1 }\n")
	chunk := make([]byte, 0, 1<<20)
	for len(chunk)+len(line) <= cap(chunk) {
		chunk = append(chunk, line...)
	}
	for range 100 {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ns, ds := ParseFile(path, Options{})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	if ns != nil || len(ds) != 1 || !strings.Contains(ds[0].Msg, "more than the limit of 16777216") {
		t.Errorf("got %d nodes, %v", len(ns), ds)
	}
	ns, ds = ParseBytes("big.conf", make([]byte, 17<<20), Options{})
	if ns != nil || len(ds) != 1 || !strings.Contains(ds[0].Msg, "more than the limit of 16777216") {
		t.Errorf("ParseBytes: got %d nodes, %v", len(ns), ds)
	}
}
