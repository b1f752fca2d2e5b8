// Package filetransfer moves files through Kafka encrypted: it sends a
// file as chunk/1 records (one fresh Vault data key per file, chunks sized
// to the broker's message limit, produced in bounded batches so memory stays
// flat whatever the file size), receives them with a consumer group into a
// directory (temporary file, verified size and SHA-256, atomic rename, safe
// names, never an overwrite), keeps every record it cannot decrypt in a
// quarantine folder or a dead-letter topic, re-produces quarantined records
// (redrive), watches a folder for files to send, and reads and writes the
// original demo's one-message legacy format.
//
// Offsets of a file's records are committed only once the file is written
// or quarantined, so a crash or rebalance re-delivers an unfinished file
// rather than losing it. Plaintext, data keys and tokens are never logged.
// The wire formats are those of the envelope package (docs/wire-format.md);
// docs/files.md describes commands, layouts and limits.
package filetransfer
