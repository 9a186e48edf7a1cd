package syntax

// buildBlocks turns preprocessed token lines into the node tree.
//
// keepalived's read_line() cuts a line at every '{' or '}' outside quotes,
// so braces always act as statement boundaries: "a {b}" is the statements
// "a", "{", "b", "}", and text after a '}' is a new statement. A block opens
// when '{' follows a keyword statement, on the same line or a later one
// (process_stream accepts the '{' on the next line).
//
// The tree is built with an explicit stack, so that deep nesting cannot
// overflow the Go stack; beyond opts.MaxDepth the contents are skipped, up
// to the matching '}', after one error.
func buildBlocks(lines [][]Token, opts Options, ds *diagSink) []*Node {
	type frame struct {
		node  *Node
		brace Token
	}
	var top []*Node
	var stack []frame
	var last *Node // the statement a '{' would open a block for
	skip := 0      // depth inside a block that is too deep
	appendNode := func(n *Node) {
		if len(stack) == 0 {
			top = append(top, n)
		} else {
			f := stack[len(stack)-1].node
			f.Block = append(f.Block, n)
		}
	}
	for _, toks := range lines {
		for i := 0; i < len(toks); {
			t := toks[i]
			switch {
			case !t.Quoted && t.Text == "{":
				i++
				switch {
				case skip > 0:
					skip++
				case len(stack) >= opts.MaxDepth:
					ds.add(t.Pos, Error, "blocks nested more than %d deep", opts.MaxDepth)
					skip = 1
				case last == nil:
					// keepalived would read "{" as an unknown keyword.
					ds.add(t.Pos, Error, "'{' without a keyword before it")
					// Keep the braces balanced; the contents are dropped.
					stack = append(stack, frame{&Node{Keyword: t}, t})
				default:
					last.HasBlock = true
					stack = append(stack, frame{last, t})
				}
				last = nil
			case !t.Quoted && t.Text == "}":
				i++
				switch {
				case skip > 0:
					skip--
				case len(stack) == 0:
					// keepalived: "Extra '}' found".
					ds.add(t.Pos, Error, "'}' without a matching '{'")
				default:
					stack = stack[:len(stack)-1]
				}
				last = nil
			default:
				j := i + 1
				for j < len(toks) && (toks[j].Quoted || toks[j].Text != "{" && toks[j].Text != "}") {
					j++
				}
				if skip == 0 {
					n := &Node{Keyword: t}
					if j > i+1 {
						n.Args = toks[i+1 : j : j]
					}
					appendNode(n)
					last = n
				}
				i = j
			}
		}
	}
	for k := len(stack) - 1; k >= 0; k-- {
		ds.add(stack[k].brace.Pos, Error, "'{' is never closed")
	}
	return top
}
