// Package lifecycle runs kafkagate's key lifecycle jobs over whole topics:
//
//   - Inventory scans a topic and counts, per key version its records refer
//     to (transit key versions of fields, FPE domain versions, KEK versions
//     of wrapped data keys, blind index key versions), the records and
//     their oldest and newest offsets and timestamps, so an operator can
//     tell whether a key's min_decryption_version can be raised.
//   - Rewrap copies a topic to another one with every record moved to the
//     latest key versions (protect.Rewrapper knows the record formats),
//     resumable from saved offsets, and verifies the counts at the end.
//   - Provision (provision.go) sets up what the policies need in Vault and
//     Kafka, idempotently, and reports drift.
//
// The jobs take the Kafka client and the protect engine (or the Vault
// client) they work with; they never log a plaintext, data key or token.
package lifecycle
