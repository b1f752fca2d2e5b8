// Command consumer is the original demo's consumer.py in Go: see
// `consumer --help` and the README's demo section.
package main

import "github.com/kafkagate/kafkagate/demo/internal/programs"

func main() { programs.Main(programs.Consumer) }
