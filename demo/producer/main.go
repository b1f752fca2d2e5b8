// Command producer is the original demo's producer.py in Go: see
// `producer --help` and the README's demo section.
package main

import "github.com/kafkagate/kafkagate/demo/internal/programs"

func main() { programs.Main(programs.Producer) }
