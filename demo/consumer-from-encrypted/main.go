// Command consumer-from-encrypted is the original demo's consumer_from_encrypted.py in Go: see
// `consumer-from-encrypted --help` and the README's demo section.
package main

import "github.com/kafkagate/kafkagate/demo/internal/programs"

func main() { programs.Main(programs.ConsumerFromEncrypted) }
