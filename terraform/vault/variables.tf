variable "vault_namespace" {
  description = "Vault Enterprise / HCP Vault namespace to create everything in (e.g. admin on HCP). null uses VAULT_NAMESPACE from the environment, or none."
  type        = string
  default     = null
}

# --- Mounts ------------------------------------------------------------------

variable "transit_mount" {
  description = "Mount path of the transit secrets engine: transit_mount in [kafkagate] of getting_started.ini (gateway provision's transit mount)."
  type        = string
  default     = "transit"
}

variable "kv_mount" {
  description = "Mount path of the KV version 2 engine that holds the wrapped FPE keys: fpe_kv_mount in [kafkagate] (default secret)."
  type        = string
  default     = "secret"
}

variable "create_kv_mount" {
  description = "Create the KV v2 mount at kv_mount. Set false when it exists already: a dev server (vault server -dev) mounts KV v2 at secret/."
  type        = bool
  default     = true
}

variable "fpe_kv_prefix" {
  description = "Path inside kv_mount under which kafkagate stores one entry per FPE domain (<prefix>/<domain>): fpe_kv_prefix in [kafkagate]."
  type        = string
  default     = "kafkagate/fpe"
}

# --- Topics ------------------------------------------------------------------------

# One entry per [policy:<topic>] of getting_started.ini that encrypts
# (mode fields or envelope; passthrough topics get nothing). For each entry
# this module creates the topic's transit keys and the policies and AppRole
# roles kafkagate-<topic>-producer, -consumer and -admin, with the same
# names and the same rules as `gateway provision` (lifecycle.PolicyHCL).
# The defaults are the three policies of getting_started.ini.orig;
# `go test ./terraformtest/` checks that they agree.
variable "topics" {
  description = <<-EOT
    Encrypting topics, keyed by topic name, as their [policy:<topic>] sections say:
      mode         - "fields" or "envelope".
      transit_key  - fields: the transit key of the transit fields (transit_key with {topic}
                     replaced, default kafka-<topic>); null when the policy has no transit field.
      index_key    - fields: the blind-index HMAC key (index_key), only when a transit field
                     has index=hmac; else null.
      fpe_domains  - fields: the domain= of each fpe field (empty: none).
      envelope_key - envelope: the KEK that wraps the data keys (envelope_key).
  EOT
  type = map(object({
    mode         = string
    transit_key  = optional(string)
    index_key    = optional(string)
    fpe_domains  = optional(list(string), [])
    envelope_key = optional(string)
  }))
  default = {
    purchases = {
      mode        = "fields"
      transit_key = "kafka-purchases"
    }
    purchases_encrypted = {
      mode        = "fields"
      transit_key = "kafka-purchases_encrypted"
      fpe_domains = ["payments.card_number"]
    }
    purchases_large_encrypted = {
      mode         = "envelope"
      envelope_key = "kafkagate-envelope"
    }
  }

  validation {
    condition = alltrue([for t in values(var.topics) : (
      t.mode == "fields" ? t.envelope_key == null : (t.mode == "envelope" && t.envelope_key != null && t.transit_key == null && t.index_key == null && length(t.fpe_domains) == 0)
    )])
    error_message = "Each topic has mode \"fields\" (transit_key, index_key, fpe_domains; no envelope_key) or \"envelope\" (envelope_key only)."
  }

  validation {
    condition = alltrue(flatten([for t in values(var.topics) : [
      for k in concat(t.transit_key == null ? [] : [t.transit_key], t.index_key == null ? [] : [t.index_key], t.envelope_key == null ? [] : [t.envelope_key]) :
      can(regex("^[A-Za-z0-9._-]+$", k))
    ]]))
    error_message = "Transit key names may only contain A-Z, a-z, 0-9, '.', '_' and '-'."
  }
}

# --- Transit keys ----------------------------------------------------------------

variable "fpe_kek_name" {
  description = "Transit key (derived) that wraps the FPE keys (fpe_kek in [kafkagate]); context is <domain>|v<version>."
  type        = string
  default     = "kafkagate-fpe-kek"
}

variable "legacy_transit_key_name" {
  description = "Transit key (not derived) of the original Python demo: its Address field and its file-transfer data keys. Kept so old records stay readable; no generated policy grants it (see README.md)."
  type        = string
  default     = "transit"
}

variable "auto_rotate_period" {
  description = "Automatic rotation period in seconds of the topics' transit keys and envelope KEKs; 0 disables it. Old versions stay usable for decryption. The FPE KEK is rotated by an admin, who then rewraps the stored FPE keys."
  type        = number
  default     = 0
}

variable "key_deletion_allowed" {
  description = "Allow the transit keys to be deleted (terraform destroy). Deleting a key makes everything encrypted with it unreadable; enable only for throw-away demos."
  type        = bool
  default     = false
}

variable "disable_transit_upsert" {
  description = "Set transit/config/keys disable_upsert=true (Vault 1.13+), so an encrypt call with a misspelled key name fails instead of creating a new key."
  type        = bool
  default     = true
}

# --- AppRole ---------------------------------------------------------------------

variable "approle_path" {
  description = "Mount path of the AppRole auth method (gateway provision's AppRole mount)."
  type        = string
  default     = "approle"
}

variable "token_ttl" {
  description = "TTL in seconds of the tokens every kafkagate-<topic>-<role> AppRole role issues; the default is gateway provision's --token-ttl (1h)."
  type        = number
  default     = 3600
}

variable "token_max_ttl" {
  description = "Maximum lifetime in seconds of a renewed token, for every role; the default is gateway provision's --token-max-ttl (24h)."
  type        = number
  default     = 86400
}

variable "secret_id_ttl" {
  description = "Lifetime in seconds of an AppRole secret ID; 0 means no expiry (what gateway provision leaves)."
  type        = number
  default     = 86400
}

variable "secret_id_bound_cidrs" {
  description = "CIDR blocks allowed to log in with a secret ID; empty allows any address."
  type        = list(string)
  default     = []
}

variable "token_bound_cidrs" {
  description = "CIDR blocks allowed to use the issued tokens; empty allows any address."
  type        = list(string)
  default     = []
}
