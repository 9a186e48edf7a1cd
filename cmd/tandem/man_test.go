package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestManPageEscapes checks that help text reaches roff as text: a line
// starting with "." would otherwise be a request (and vanish), a backslash
// an escape, and the NAME line must keep man-db's "name \- summary" form.
func TestManPageEscapes(t *testing.T) {
	root := &cobra.Command{Use: "tandem"}
	sub := &cobra.Command{Use: "demo -f FILE", Short: "Do a thing", Long: "first line\n.SH not a section\n'also text\na \\n backslash", Run: func(*cobra.Command, []string) {}}
	root.AddCommand(sub)
	var b bytes.Buffer
	writeManPage(&b, sub)
	page := b.String()
	for _, want := range []string{
		".SH NAME\ntandem\\-demo \\- Do a thing\n",
		"\n\\&.SH not a section\n",
		"\n\\&'also text\n",
		"a \\en backslash",
		".SH SEE ALSO\n\\fBtandem\\fR(8)\n",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
}

// TestManPages writes the real commands' pages: one per command that
// TestDocs documents, each with its NAME line and the options of its help.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	root := newRoot(io.Discard, io.Discard)
	if err := writeManPages(root, dir); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(entries), len(manCommands(root)); got != want || want < 10 {
		t.Fatalf("%d pages for %d commands", got, want)
	}
	page, err := os.ReadFile(filepath.Join(dir, "tandem-run.8"))
	if err != nil {
		t.Fatal(err)
	}
	top, err := os.ReadFile(filepath.Join(dir, "tandem.8"))
	if err != nil {
		t.Fatal(err)
	}
	if want := ".SH COMMANDS\n.TP\n\\fBtandem\\-check\\fR(8)\nValidate"; !bytes.Contains(top, []byte(want)) {
		t.Errorf("tandem.8 does not list the commands (%q):\n%s", want, top)
	}
	for _, want := range []string{".TH TANDEM\\-RUN 8 ", ".SH NAME\ntandem\\-run \\- Run the VRRP", ".SH OPTIONS\n", "\\-\\-dataplane", "SIGHUP"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("tandem-run.8 lacks %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "tandem-man.8")); err == nil {
		t.Error("the hidden man command has a page of its own")
	}
}
