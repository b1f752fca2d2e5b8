// Command consumer-file-transfer is the original demo's consumer_file_transfer.py in Go: see
// `consumer-file-transfer --help` and the README's demo section.
package main

import "github.com/kafkagate/kafkagate/demo/internal/programs"

func main() { programs.Main(programs.ConsumerFileTransfer) }
