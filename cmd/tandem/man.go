package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// newManCmd writes the section 8 manual pages of every command, in roff,
// from the commands' own help: the Debian package (packaging/deb) runs it
// on the binary it ships, so the pages always match that binary. Hidden:
// it is a build step, not an operator's command.
func newManCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write the manual pages (section 8, roff) of every command to DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return writeManPages(cmd.Root(), args[0])
		},
	}
}

// manCommands lists the commands that get a page: all but the hidden ones
// and cobra's help and completion.
func manCommands(c *cobra.Command) []*cobra.Command {
	if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
		return nil
	}
	out := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		out = append(out, manCommands(sub)...)
	}
	return out
}

// manName is a command's page name: "tandem lab up" is tandem-lab-up(8).
func manName(c *cobra.Command) string {
	return strings.ReplaceAll(c.CommandPath(), " ", "-")
}

func writeManPages(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("man: %w", err)
	}
	for _, c := range manCommands(root) {
		path := filepath.Join(dir, manName(c)+".8")
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("man: %w", err)
		}
		writeManPage(f, c)
		if err := f.Close(); err != nil {
			return fmt.Errorf("man: %s: %w", path, err)
		}
	}
	return nil
}

// roffText escapes text for roff (groff_man(7)): a backslash is "\e", a
// hyphen "\-" (so that options stay ASCII hyphens when copied from the
// rendered page), and a line starting with "." or "'" (a request) is
// protected with "\&".
func roffText(s string) string {
	s = strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			lines[i] = `\&` + l
		}
	}
	return strings.Join(lines, "\n")
}

// roffBlock writes text without filling, as --help shows it: the help
// texts are laid out by hand (aligned tables of signals and keywords),
// which filling would run together.
func roffBlock(w io.Writer, text string) {
	fmt.Fprintf(w, ".nf\n%s\n.fi\n", roffText(strings.TrimRight(text, "\n")))
}

// writeManPage renders one command's help as a section 8 page; the NAME
// line has the "name \- summary" form that man-db's index (lexgrog) reads.
func writeManPage(w io.Writer, c *cobra.Command) {
	name := manName(c)
	fmt.Fprintf(w, ".TH %s 8 \"\" \"tandem %s\" \"Tandem\"\n", strings.ToUpper(roffText(name)), roffText(version))
	fmt.Fprintf(w, ".SH NAME\n%s \\- %s\n", roffText(name), roffText(c.Short))
	fmt.Fprintf(w, ".SH SYNOPSIS\n")
	use := c.UseLine()
	if !c.Runnable() && c.HasAvailableSubCommands() {
		use += " COMMAND"
	}
	roffBlock(w, use)
	if long := strings.TrimSpace(c.Long); long != "" {
		fmt.Fprintf(w, ".SH DESCRIPTION\n")
		roffBlock(w, long)
	}
	if f := c.NonInheritedFlags().FlagUsages(); f != "" {
		fmt.Fprintf(w, ".SH OPTIONS\n")
		roffBlock(w, f)
	}
	if f := c.InheritedFlags().FlagUsages(); f != "" {
		fmt.Fprintf(w, ".SH GLOBAL OPTIONS\n")
		roffBlock(w, f)
	}
	var subs []*cobra.Command
	for _, sub := range c.Commands() {
		if len(manCommands(sub)) > 0 {
			subs = append(subs, sub)
		}
	}
	if len(subs) > 0 {
		fmt.Fprintf(w, ".SH COMMANDS\n")
		for _, sub := range subs {
			fmt.Fprintf(w, ".TP\n\\fB%s\\fR(8)\n%s\n", roffText(manName(sub)), roffText(sub.Short))
		}
	}
	// SEE ALSO: the parent, the subcommands, and from tandem(8) the
	// configuration pages.
	var see []string
	ref := func(name, section string) { see = append(see, `\fB`+roffText(name)+`\fR(`+section+`)`) }
	if p := c.Parent(); p != nil {
		ref(manName(p), "8")
	}
	for _, sub := range subs {
		ref(manName(sub), "8")
	}
	if c.Parent() == nil {
		ref("tandem-keepalived.conf", "5")
		ref("keepalived.conf", "5")
	}
	fmt.Fprintf(w, ".SH SEE ALSO\n%s\n", strings.Join(see, ",\n"))
}
