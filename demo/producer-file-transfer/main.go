// Command producer-file-transfer is the original demo's producer_file_transfer.py in Go: see
// `producer-file-transfer --help` and the README's demo section.
package main

import "github.com/kafkagate/kafkagate/demo/internal/programs"

func main() { programs.Main(programs.ProducerFileTransfer) }
