// Package syntax turns keepalived.conf text into a tree of keyword nodes with
// positions: the lexer (comments, quoting, braces), the preprocessor (include,
// @conditional lines, $definitions, ~SEQ/~LST loops) and the block builder.
// It knows nothing of what the keywords mean; package config does.
package syntax

import (
	"fmt"
	"strings"
)

// Pos is a position in a configuration file. IncludedFrom, when set, is the
// position of the include directive that brought File in, so that an error in
// an included file can show the whole include chain.
type Pos struct {
	File         string
	Line, Col    int
	IncludedFrom *Pos
}

// String gives "file:line:col".
func (p Pos) String() string {
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Token is one word of a configuration line, unquoted, with where it started.
// Braces are tokens of their own with Text "{" or "}" and Quoted false.
type Token struct {
	Text   string
	Quoted bool
	Pos    Pos
}

// Node is one keyword line, with the block it opens if it is followed by "{".
type Node struct {
	Keyword  Token
	Args     []Token
	HasBlock bool
	Block    []*Node
}

// Severity says whether a diagnostic stops the configuration from running.
type Severity int

// The severities, in increasing order of gravity.
const (
	Warning Severity = iota
	Error
)

func (s Severity) String() string {
	if s == Error {
		return "error"
	}
	return "warning"
}

// Diagnostic is one message about the configuration, at a position.
type Diagnostic struct {
	Pos      Pos
	Severity Severity
	Msg      string
}

// String gives "file:line:col: error: message", followed by one
// "\tincluded from file:line:col" line per include level.
func (d Diagnostic) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s: %s", d.Pos, d.Severity, d.Msg)
	for p := d.Pos.IncludedFrom; p != nil; p = p.IncludedFrom {
		fmt.Fprintf(&b, "\n\tincluded from %s", p)
	}
	return b.String()
}

// Diagnostics is a list of messages in the order they were found.
type Diagnostics []Diagnostic

// HasErrors reports whether any diagnostic is an error.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == Error {
			return true
		}
	}
	return false
}
