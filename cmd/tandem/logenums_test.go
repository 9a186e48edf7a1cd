package main

import (
	"go/ast"
	"go/types"
	"os"
	"reflect"
	"slices"
	"testing"

	"golang.org/x/tools/go/packages"
)

// loggedNumbers are named integer types that logs rightly show as
// numbers, each with the reason.
var loggedNumbers = map[string]string{
	"time.Duration": "slog's own duration kind: the text format writes 1.5s, the JSON format nanoseconds, as slog documents",
}

// TestLogsWriteEnumNames reads every slog call of the module's non-test
// code and fails on an argument of a named integer type that neither
// names itself to slog (LogValue) nor writes itself as text
// (MarshalText, MarshalJSON): slog's JSON handler would log its number
// (keepalived logs names: "Entering MASTER STATE").
func TestLogsWriteEnumNames(t *testing.T) {
	pkgs, err := packages.Load(&packages.Config{
		Mode: packages.NeedName | packages.NeedSyntax | packages.NeedTypes | packages.NeedTypesInfo,
		Dir:  "../..",
		Env:  append(os.Environ(), "CGO_ENABLED=0"),
	}, reflect.TypeFor[plainEnum]().PkgPath()[:len("tandem")]+"/...")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, p := range pkgs {
		for _, e := range p.Errors {
			t.Fatalf("load %s: %v", p.PkgPath, e)
		}
		for _, f := range p.Syntax {
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || !isSlogCall(p.TypesInfo, call) {
					return true
				}
				for _, arg := range call.Args {
					checked++
					if typ := p.TypesInfo.TypeOf(arg); typ != nil && !loggable(typ) {
						t.Errorf("%s: %s is logged as a number: give %s a LogValue (or MarshalText), or list it in loggedNumbers with the reason",
							p.Fset.Position(arg.Pos()), types.ExprString(arg), typ)
					}
				}
				return true
			})
		}
	}
	if checked < 100 {
		t.Fatalf("only %d slog arguments found: the walk is broken", checked)
	}
}

// isSlogCall reports whether call is a log/slog function or a method of
// slog's Logger (Info, With, Any, Group, ...).
func isSlogCall(info *types.Info, call *ast.CallExpr) bool {
	var obj types.Object
	switch fn := call.Fun.(type) {
	case *ast.SelectorExpr:
		obj = info.Uses[fn.Sel]
	case *ast.Ident:
		obj = info.Uses[fn]
	}
	f, ok := obj.(*types.Func)
	return ok && f.Pkg() != nil && f.Pkg().Path() == "log/slog"
}

// loggable reports whether slog writes a value of typ as words in both
// its formats, looking into slices, arrays, maps and pointers.
func loggable(typ types.Type) bool {
	if n, ok := types.Unalias(typ).(*types.Named); ok {
		if slices.ContainsFunc([]string{"LogValue", "MarshalText", "MarshalJSON"}, func(m string) bool {
			obj, _, _ := types.LookupFieldOrMethod(types.NewPointer(n), true, n.Obj().Pkg(), m)
			_, isFunc := obj.(*types.Func)
			return isFunc
		}) {
			return true
		}
		if b, ok := n.Underlying().(*types.Basic); ok && b.Info()&types.IsInteger != 0 {
			_, ok := loggedNumbers[n.String()]
			return ok
		}
	}
	switch u := typ.Underlying().(type) {
	case *types.Slice:
		return loggable(u.Elem())
	case *types.Array:
		return loggable(u.Elem())
	case *types.Pointer:
		return loggable(u.Elem())
	case *types.Map:
		return loggable(u.Key()) && loggable(u.Elem())
	}
	return true
}
