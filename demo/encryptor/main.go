// Command encryptor is the original demo's encryptor.py in Go: see
// `encryptor --help` and the README's demo section.
package main

import "github.com/kafkagate/kafkagate/demo/internal/programs"

func main() { programs.Main(programs.Encryptor) }
