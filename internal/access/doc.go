// Package access holds kafkagate's access control: the access file (bearer
// token hashes, client certificate subjects and SASL credentials, each
// mapped to a principal), the principals and their rights, and the lookups
// that turn a presented credential into a principal. It knows nothing of
// HTTP or Kafka: internal/httpapi and the Kafka proxy call it.
//
// The access file format is documented in docs/security.md ("Access
// control"):
//
//	# comment
//	token sha256:<64 hex digits>   <principal> <right> [<right> ...]
//	cert  <subject>                <principal> <right> [<right> ...]
//	sasl  <username> <credentials> <principal> <right> [<right> ...]
//
// Rights are produce:<topic>, consume:<topic> (a topic may be "*" or end
// with "*" for a prefix), admin and metrics. A subject is CN=<name>
// (matches the certificate's Common Name) or a whole subject in RFC 2253
// form, double-quoted when it holds spaces ("CN=Bridge 1,O=Acme"). SASL
// credentials are SCRAM stored keys (see ParseSASLCredentials), never a
// password.
package access
