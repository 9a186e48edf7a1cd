// Package examples holds example configurations, built into the tandem
// binary so that `tandem lab demo` runs from anywhere, not only from a
// checkout.
package examples

import "embed"

// FS holds the *.conf files of this directory.
//
//go:embed *.conf
var FS embed.FS
