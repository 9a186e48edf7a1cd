package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite docs/ from the commands' help")

// TestDocs keeps docs/, one man-page style file per command, in step with
// the commands' own help: `go test ./cmd/tandem -run Docs -update-docs`
// rewrites it.
func TestDocs(t *testing.T) {
	dir := filepath.Join("..", "..", "docs")
	want := map[string]string{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		var b bytes.Buffer
		writeDoc(&b, c)
		want[strings.ReplaceAll(c.CommandPath(), " ", "-")+".md"] = b.String()
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot(io.Discard, io.Discard))
	if *updateDocs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, text := range want {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, text := range want {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != text {
			t.Errorf("docs/%s is out of date with the command's help (go test ./cmd/tandem -run Docs -update-docs)", name)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		// internal/config's TestKeywordReport writes this one.
		if e.Name() == "keepalived-keywords.md" {
			continue
		}
		if _, ok := want[e.Name()]; !ok {
			t.Errorf("docs/%s documents no command", e.Name())
		}
	}
}

// writeDoc renders one command's help as a man page in markdown.
func writeDoc(w io.Writer, c *cobra.Command) {
	fmt.Fprintf(w, "# %s\n\n## NAME\n\n%s - %s\n\n## SYNOPSIS\n\n    %s\n", c.CommandPath(), c.CommandPath(), c.Short, c.UseLine())
	if long := strings.TrimSpace(c.Long); long != "" {
		fmt.Fprintf(w, "\n## DESCRIPTION\n\n%s\n", long)
	}
	if f := c.NonInheritedFlags().FlagUsages(); f != "" {
		fmt.Fprintf(w, "\n## OPTIONS\n\n```\n%s```\n", f)
	}
	var subs []string
	for _, sub := range c.Commands() {
		if !sub.Hidden && sub.Name() != "help" && sub.Name() != "completion" {
			subs = append(subs, fmt.Sprintf("- [%s](%s.md): %s", sub.CommandPath(), strings.ReplaceAll(sub.CommandPath(), " ", "-"), sub.Short))
		}
	}
	if len(subs) > 0 {
		fmt.Fprintf(w, "\n## COMMANDS\n\n%s\n", strings.Join(subs, "\n"))
	}
	if p := c.Parent(); p != nil {
		fmt.Fprintf(w, "\n## SEE ALSO\n\n[%s](%s.md)\n", p.CommandPath(), strings.ReplaceAll(p.CommandPath(), " ", "-"))
	}
}
