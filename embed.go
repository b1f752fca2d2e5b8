// Package kafkagate holds what the whole product shares at its root: the
// default configuration, which is the repository's getting_started.ini.orig
// embedded in the binary so that `gateway dev` and `make demo` run with no
// file at all.
package kafkagate

import _ "embed"

// DefaultConfig is getting_started.ini.orig.
//
//go:embed getting_started.ini.orig
var DefaultConfig []byte
