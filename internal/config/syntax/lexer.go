package syntax

import (
	"bytes"
	"iter"
)

// text is a piece of a configuration line together with, for every byte,
// the 1-based column it came from in the original physical line. Keeping the
// columns byte by byte lets comment removal, escape removal and $expansion
// rewrite the text while tokens still report where they were written.
type text struct {
	b    []byte
	cols []int
}

func (t text) slice(i, j int) text { return text{t.b[i:j], t.cols[i:j]} }

func (t *text) add(c byte, col int) {
	t.b = append(t.b, c)
	t.cols = append(t.cols, col)
}

// colAt is the column of byte i, or of the end of the text when i is past it.
func (t text) colAt(i int, fallback int) int {
	switch {
	case i < len(t.cols):
		return t.cols[i]
	case len(t.cols) > 0:
		return t.cols[len(t.cols)-1] + 1
	}
	return fallback
}

// isSpace is keepalived's word separator set (WHITE_SPACE_STR in parser.c:
// space, tab, form feed, newline, carriage return, vertical tab).
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\f' || c == '\n' || c == '\r' || c == '\v'
}

// isBlank is what parser.c trims around lines and directive arguments.
func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isIdentStart and isIdent follow parser.c's definition names: a letter or
// '_' followed by letters, digits and '_'.
func isIdentStart(c byte) bool { return isAlpha(c) || c == '_' }
func isIdent(c byte) bool      { return isAlpha(c) || isDigit(c) || c == '_' }

// lines yields the physical lines of src, numbered from 1, split at '\n'.
// keepalived strips every trailing '\n' and '\r' from a line it reads
// (read_line), which is what makes CRLF files work; a final line without
// '\n' is still a line. Lines are yielded one by one so that a file of
// millions of empty lines costs no memory.
func lines(src []byte) iter.Seq2[int, []byte] {
	return func(yield func(int, []byte) bool) {
		for n := 1; len(src) > 0; n++ {
			i := bytes.IndexByte(src, '\n')
			var l []byte
			if i < 0 {
				l, src = src, nil
			} else {
				l, src = src[:i], src[i+1:]
			}
			for len(l) > 0 && l[len(l)-1] == '\r' {
				l = l[:len(l)-1]
			}
			if !yield(n, l) {
				return
			}
		}
	}
}

// decomment applies keepalived's decomment() to one physical line:
//   - leading blanks are dropped;
//   - a '!' or '#' outside double quotes starts a comment, wherever it is in
//     the line (so "auth_pass abc#1" is "auth_pass abc");
//   - outside quotes "\#" and "\!" stand for a literal '#' and '!';
//   - any other '\' keeps itself and the next byte (so "\"" never opens or
//     closes a quote);
//   - a '\' as the last byte is a continuation mark, reported in cont and
//     removed; keepalived only honours it in $definitions; so is a '\'
//     that ends the line once the comment and trailing blanks are cut;
//   - trailing blanks are dropped.
func decomment(line []byte) (t text, cont bool) {
	t, cont, _ = decommentText(text{b: line})
	return t, cont
}

// decommentText is decomment for text whose columns are known (nil cols
// means byte i is at column i+1). comment is the index in in.b of the '!'
// or '#' that started a comment, or -1.
func decommentText(in text) (t text, cont bool, comment int) {
	line := in.b
	col := func(i int) int {
		if in.cols == nil {
			return i + 1
		}
		return in.cols[i]
	}
	t = text{b: make([]byte, 0, len(line)), cols: make([]int, 0, len(line))}
	comment = -1
	quote := false
	i := 0
	for i < len(line) && isBlank(line[i]) {
		i++
	}
scan:
	for ; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '"':
			quote = !quote
		case c == '\\':
			if i+1 == len(line) {
				cont = true
				break scan
			}
			if !quote && (line[i+1] == '#' || line[i+1] == '!') {
				i++
				t.add(line[i], col(i))
				continue
			}
			t.add(c, col(i))
			i++
			c = line[i]
		case !quote && (c == '!' || c == '#'):
			comment = i
			// decomment() scans on through the comment: a '\' ending
			// the line still continues a $definition, so in
			// "$X=a # note \" the '\' is a continuation mark.
			for j := i; j < len(line); j++ {
				if line[j] == '\\' {
					cont = cont || j+1 == len(line)
					j++
				}
			}
			break scan
		}
		t.add(c, col(i))
	}
	n := len(t.b)
	for n > 0 && isBlank(t.b[n-1]) {
		n--
	}
	// keepalived tests for a final '\' after decomment() has cut the
	// comment and the trailing blanks (check_definition, read_line), so
	// "$X=a \ # note" and "$X=a \ " continue too; the '\' and the blanks
	// before it go, as the last byte of the line would.
	if !cont && n > 0 && t.b[n-1] == '\\' {
		cont = true
		n--
		for n > 0 && isBlank(t.b[n-1]) {
			n--
		}
	}
	return t.slice(0, n), cont, comment
}

// tokenize splits decommented text into tokens, following keepalived's
// alloc_strvec_r() and the brace splitting of read_line():
//   - words are separated by WHITE_SPACE_STR;
//   - a '"' starts a quoted token, even in the middle of a word ("abc"def"
//     is the word abc then the quoted def); the quoted token runs to the next
//     unescaped '"', may hold blanks and may be empty;
//   - inside quotes "\"" and "\\" stand for '"' and '\'; any other escape is
//     kept as written, because keepalived passes it on to the handlers that
//     interpret them (alloc_strvec_quoted_escaped);
//   - outside quotes a '\' is an ordinary character, except that "\"" is
//     kept in the word rather than opening a quote, as decomment() saw it;
//   - '{' and '}' outside quotes are tokens of their own even when glued to
//     words ("{1.2.3.4}" is "{", "1.2.3.4", "}").
//
// An unterminated quote is an error at the column of the opening quote; the
// token then runs to the end of the line.
func tokenize(t text, pos Pos, ds *diagSink) []Token {
	var toks []Token
	b := t.b
	at := func(i int) Pos {
		p := pos
		p.Col = t.colAt(i, pos.Col)
		return p
	}
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case isSpace(c):
			i++
		case c == '{' || c == '}':
			toks = append(toks, Token{Text: string(c), Pos: at(i)})
			i++
		case c == '"':
			start := i
			var w []byte
			i++
			closed := false
			for i < len(b) {
				c := b[i]
				if c == '"' {
					closed = true
					i++
					break
				}
				if c == '\\' && i+1 < len(b) {
					if n := b[i+1]; n == '"' || n == '\\' {
						w = append(w, n)
					} else {
						w = append(w, c, n)
					}
					i += 2
					continue
				}
				w = append(w, c)
				i++
			}
			if !closed {
				ds.add(at(start), Error, "unterminated quoted string")
			}
			toks = append(toks, Token{Text: string(w), Quoted: true, Pos: at(start)})
		default:
			start := i
			for i < len(b) {
				c := b[i]
				if isSpace(c) || c == '"' || c == '{' || c == '}' {
					break
				}
				if c == '\\' && i+1 < len(b) && b[i+1] == '"' {
					i++
				}
				i++
			}
			toks = append(toks, Token{Text: string(b[start:i]), Pos: at(start)})
		}
	}
	return toks
}
