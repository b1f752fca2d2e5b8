// Package testkit holds the shared test fixtures of kafkagate: a real
// Vault dev server and an embedded Kafka broker started for one test, a
// gateway assembled and served on them, its Kafka proxy, outside Kafka
// clients (kcat, python3-confluent-kafka, KafkaJS) driven as producers and
// group consumers, a goroutine-safe log buffer, and helpers that produce,
// read and count records. For the HA tests: a three-node Vault raft
// cluster, Debian's HAProxy in front of any HTTP backends, child processes
// that die with the test, and a REST produce load whose every attempt is
// recorded and matched with the topic. For TLS tests: a throwaway CA with
// a server certificate and client certificates.
//
// It is imported only by _test.go files. Packages that testkit itself
// imports (directly or through gateway) cannot use it from their internal
// tests (package foo); their external tests (package foo_test) can.
package testkit
