package main

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"tandem/internal/api"
	"tandem/internal/config"
)

// trueNumbers are named integer types that JSON rightly writes as
// numbers, each with the reason.
var trueNumbers = map[reflect.Type]string{}

// enumFields returns the paths of the fields, under t, whose type is a
// named integer type that JSON writes as a number (it has neither
// MarshalText nor MarshalJSON): an enum a reader would see as a bare
// number.
func enumFields(t reflect.Type, path string, seen map[reflect.Type]bool, out *[]string) {
	text := reflect.TypeFor[encoding.TextMarshaler]()
	js := reflect.TypeFor[json.Marshaler]()
	if t.Implements(text) || t.Implements(js) || reflect.PointerTo(t).Implements(text) || reflect.PointerTo(t).Implements(js) {
		return
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if t.PkgPath() != "" {
			if _, ok := trueNumbers[t]; !ok {
				*out = append(*out, path+" ("+t.String()+")")
			}
		}
	case reflect.Interface:
		// What it holds is known only at run time: the walk cannot vouch
		// for it.
		*out = append(*out, path+" ("+t.String()+", an interface)")
	case reflect.Pointer, reflect.Slice, reflect.Array:
		enumFields(t.Elem(), path+"[]", seen, out)
	case reflect.Map:
		enumFields(t.Key(), path+"{key}", seen, out)
		enumFields(t.Elem(), path+"{}", seen, out)
	case reflect.Struct:
		if seen[t] {
			return
		}
		seen[t] = true
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			enumFields(f.Type, path+"."+name, seen, out)
		}
	}
}

// TestJSONWritesEnumNames: every enum in what Tandem prints as JSON
// (`tandem status --json`, the reload answer, `tandem lvs list --json`,
// `tandem check --dump`) is written by name, not as a number.
func TestJSONWritesEnumNames(t *testing.T) {
	for _, v := range []any{api.Status{}, api.ReloadResult{}, api.Table{}, config.Config{}} {
		var bad []string
		enumFields(reflect.TypeOf(v), reflect.TypeOf(v).String(), map[reflect.Type]bool{}, &bad)
		for _, b := range bad {
			t.Errorf("%s is a number in JSON: give its type MarshalText, or list it in trueNumbers with the reason", b)
		}
	}
}

type plainEnum uint8

// TestEnumFieldsFinds: the walk finds a named integer type deep inside
// a document, and passes named types that write themselves as text.
func TestEnumFieldsFinds(t *testing.T) {
	type doc struct {
		A struct {
			B []map[string]*plainEnum `json:"b"`
		} `json:"a"`
		Family config.Family `json:"family"`
		Count  int           `json:"count"`
	}
	var got []string
	enumFields(reflect.TypeFor[doc](), "doc", map[reflect.Type]bool{}, &got)
	if want := []string{"doc.a.b[]{}[] (main.plainEnum)"}; !reflect.DeepEqual(got, want) {
		t.Errorf("enumFields = %q, want %q", got, want)
	}
}
