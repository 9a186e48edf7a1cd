package syntax

import (
	"fmt"
	"strings"
)

// dumpNodes renders a tree compactly for tests: one line per node,
// "keyword arg arg" with block contents indented.
func dumpNodes(ns []*Node) string {
	var b strings.Builder
	var walk func([]*Node, string)
	walk = func(ns []*Node, ind string) {
		for _, n := range ns {
			b.WriteString(ind + n.Keyword.Text)
			for _, a := range n.Args {
				if a.Quoted {
					fmt.Fprintf(&b, " %q", a.Text)
				} else {
					b.WriteString(" " + a.Text)
				}
			}
			if n.HasBlock {
				b.WriteString(" {")
			}
			b.WriteString("\n")
			if n.HasBlock {
				walk(n.Block, ind+"  ")
				b.WriteString(ind + "}\n")
			}
		}
	}
	walk(ns, "")
	return b.String()
}
