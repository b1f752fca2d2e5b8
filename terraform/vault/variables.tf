variable "vault_namespace" {
  description = "Vault Enterprise / HCP Vault namespace to create everything in (e.g. admin on HCP). null uses VAULT_NAMESPACE from the environment, or none."
  type        = string
  default     = null
}

# --- Mounts ------------------------------------------------------------------

variable "transit_mount" {
  description = "Mount path of the transit secrets engine: transit_mount in [kafkagate] of getting_started.ini."
  type        = string
  default     = "transit"
}

variable "kv_mount" {
  description = "Mount path of the KV version 2 engine that holds the wrapped FPE keys."
  type        = string
  default     = "secret"
}

variable "create_kv_mount" {
  description = "Create the KV v2 mount at kv_mount. Set false when it exists already: a dev server (vault server -dev) mounts KV v2 at secret/."
  type        = bool
  default     = true
}

variable "fpe_kv_prefix" {
  description = "Path inside kv_mount under which kafkagate stores one entry per FPE domain (kafkagate/fpe/<domain>)."
  type        = string
  default     = "kafkagate/fpe"
}

# --- Transit keys ----------------------------------------------------------------

variable "topic_transit_keys" {
  description = "Per-topic transit keys (aes256-gcm96) of the transit fields: one per [policy:<topic>] with mode = fields, named by its transit_key (default template kafka-{topic})."
  type        = list(string)
  default     = ["kafka-purchases", "kafka-purchases_encrypted"]

  validation {
    condition     = alltrue([for k in var.topic_transit_keys : can(regex("^[A-Za-z0-9._-]+$", k))])
    error_message = "Transit key names may only contain A-Z, a-z, 0-9, '.', '_' and '-'."
  }
}

variable "fpe_kek_name" {
  description = "Transit key (derived) that wraps the FPE keys; context is <domain>|v<version>."
  type        = string
  default     = "kafkagate-fpe-kek"
}

variable "envelope_key_name" {
  description = "Transit key (derived) that wraps envelope data keys; context is the topic name. envelope_key of [policy:<topic>] with mode = envelope."
  type        = string
  default     = "kafkagate-envelope"
}

variable "legacy_transit_key_name" {
  description = "Transit key (not derived) of the original Python demo: its Address field and its file-transfer data keys. Kept so old records stay readable."
  type        = string
  default     = "transit"
}

variable "auto_rotate_period" {
  description = "Automatic rotation period in seconds of the per-topic keys and the envelope KEK; 0 disables it. Old versions stay usable for decryption. The FPE KEK is rotated by an admin, who then rewraps the stored FPE keys."
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
  description = "Mount path of the AppRole auth method."
  type        = string
  default     = "approle"
}

variable "producer_token_ttl" {
  description = "TTL in seconds of tokens issued to role kafkagate-producer (gateway, bridge)."
  type        = number
  default     = 3600
}

variable "consumer_token_ttl" {
  description = "TTL in seconds of tokens issued to role kafkagate-consumer."
  type        = number
  default     = 3600
}

variable "admin_token_ttl" {
  description = "TTL in seconds of tokens issued to role kafkagate-admin (key rotation, FPE key provisioning)."
  type        = number
  default     = 900
}

variable "token_max_ttl" {
  description = "Maximum lifetime in seconds of a renewed token, for every role."
  type        = number
  default     = 14400
}

variable "secret_id_ttl" {
  description = "Lifetime in seconds of an AppRole secret ID; 0 means no expiry."
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
