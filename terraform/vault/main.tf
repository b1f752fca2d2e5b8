# Vault for kafkagate: the transit engine and keys, the KV v2 mount for the
# wrapped FPE keys, least-privilege policies per role, and AppRole logins
# bound to them.
#
# Address and token come from the environment (VAULT_ADDR, VAULT_TOKEN; a
# private CA through VAULT_CACERT or VAULT_CAPATH). TLS certificates are
# verified; do not set VAULT_SKIP_VERIFY.
provider "vault" {
  namespace = var.vault_namespace
}

locals {
  topic_keys = toset(var.topic_transit_keys)
  all_keys = toset(concat(
    var.topic_transit_keys,
    [var.fpe_kek_name, var.envelope_key_name, var.legacy_transit_key_name],
  ))

  fpe_kv_data     = "${var.kv_mount}/data/${var.fpe_kv_prefix}/*"
  fpe_kv_metadata = "${var.kv_mount}/metadata/${var.fpe_kv_prefix}/*"
}

# --- Mounts ------------------------------------------------------------------

resource "vault_mount" "transit" {
  path        = var.transit_mount
  type        = "transit"
  description = "kafkagate: per-topic field keys, FPE KEK, envelope KEK"
}

resource "vault_mount" "kv" {
  count = var.create_kv_mount ? 1 : 0

  path        = var.kv_mount
  type        = "kv"
  options     = { version = "2" }
  description = "KV v2; kafkagate keeps its wrapped FPE keys under ${var.fpe_kv_prefix}/"
}

resource "vault_generic_endpoint" "transit_disable_upsert" {
  count = var.disable_transit_upsert ? 1 : 0

  path                 = "${vault_mount.transit.path}/config/keys"
  data_json            = jsonencode({ disable_upsert = true })
  disable_delete       = true
  ignore_absent_fields = true
}

# --- Transit keys ----------------------------------------------------------------

# Per-topic keys of the transit fields (transit_key = kafka-{topic}).
resource "vault_transit_secret_backend_key" "topic" {
  for_each = local.topic_keys

  backend            = vault_mount.transit.path
  name               = each.key
  type               = "aes256-gcm96"
  auto_rotate_period = var.auto_rotate_period
  deletion_allowed   = var.key_deletion_allowed
}

# KEK of the FPE keys. Derived: each wrapped FPE key is bound to its domain
# and version through the context "<domain>|v<version>".
resource "vault_transit_secret_backend_key" "fpe_kek" {
  backend          = vault_mount.transit.path
  name             = var.fpe_kek_name
  type             = "aes256-gcm96"
  derived          = true
  deletion_allowed = var.key_deletion_allowed
}

# KEK of the envelope data keys. Derived: context is the topic name, so a
# wrapped data key copied to another topic does not unwrap.
resource "vault_transit_secret_backend_key" "envelope" {
  backend            = vault_mount.transit.path
  name               = var.envelope_key_name
  type               = "aes256-gcm96"
  derived            = true
  auto_rotate_period = var.auto_rotate_period
  deletion_allowed   = var.key_deletion_allowed
}

# The original demo's key "transit" (not derived: the demo sends no
# context). The demo only got it through encrypt's key upsert; here it is
# created explicitly so the legacy file format can be read.
resource "vault_transit_secret_backend_key" "legacy" {
  backend          = vault_mount.transit.path
  name             = var.legacy_transit_key_name
  type             = "aes256-gcm96"
  deletion_allowed = var.key_deletion_allowed
}

# --- Policies ----------------------------------------------------------------------

# Producers (gateway, bridge): encrypt only. No decrypt on the topic keys,
# so a compromised producer cannot read what it or others wrote.
data "vault_policy_document" "producer" {
  dynamic "rule" {
    for_each = local.topic_keys
    content {
      path         = "${var.transit_mount}/encrypt/${rule.value}"
      capabilities = ["update"]
      description  = "Encrypt transit fields. update only: no create, so encrypt cannot upsert a new key."
    }
  }

  rule {
    path         = "${var.transit_mount}/datakey/plaintext/${var.envelope_key_name}"
    capabilities = ["update"]
    description  = "New envelope data key (plaintext and wrapped) per message."
  }

  rule {
    path         = local.fpe_kv_data
    capabilities = ["read"]
    description  = "Read the wrapped FPE keys."
  }

  rule {
    path         = "${var.transit_mount}/decrypt/${var.fpe_kek_name}"
    capabilities = ["update"]
    description  = "Unwrap the FPE keys. FF1 runs locally in the gateway, so it needs the raw FPE key; this decrypts only what the KEK wraps (the FPE keys), never record data."
  }
}

data "vault_policy_document" "consumer" {
  dynamic "rule" {
    for_each = local.topic_keys
    content {
      path         = "${var.transit_mount}/decrypt/${rule.value}"
      capabilities = ["update"]
      description  = "Decrypt transit fields."
    }
  }

  rule {
    path         = "${var.transit_mount}/decrypt/${var.envelope_key_name}"
    capabilities = ["update"]
    description  = "Unwrap envelope data keys."
  }

  rule {
    path         = "${var.transit_mount}/decrypt/${var.legacy_transit_key_name}"
    capabilities = ["update"]
    description  = "Read records and files written by the original Python demo."
  }

  rule {
    path         = local.fpe_kv_data
    capabilities = ["read"]
    description  = "Read the wrapped FPE keys."
  }

  rule {
    path         = "${var.transit_mount}/decrypt/${var.fpe_kek_name}"
    capabilities = ["update"]
    description  = "Unwrap the FPE keys to decrypt card numbers locally."
  }
}

# Key administration: rotation, version limits, rewrap, FPE key
# provisioning. No encrypt or decrypt of record data.
data "vault_policy_document" "admin" {
  dynamic "rule" {
    for_each = local.all_keys
    content {
      path         = "${var.transit_mount}/keys/${rule.value}"
      capabilities = ["read"]
      description  = "Read key metadata (versions, min_decryption_version)."
    }
  }

  dynamic "rule" {
    for_each = local.all_keys
    content {
      path         = "${var.transit_mount}/keys/${rule.value}/rotate"
      capabilities = ["update"]
      description  = "Rotate the key."
    }
  }

  dynamic "rule" {
    for_each = local.all_keys
    content {
      path         = "${var.transit_mount}/keys/${rule.value}/config"
      capabilities = ["update"]
      description  = "Set min_decryption_version, min_encryption_version, auto_rotate_period."
    }
  }

  dynamic "rule" {
    for_each = local.all_keys
    content {
      path         = "${var.transit_mount}/rewrap/${rule.value}"
      capabilities = ["update"]
      description  = "Rewrap ciphertexts and wrapped keys to the latest key version without seeing the plaintext."
    }
  }

  rule {
    path         = "${var.transit_mount}/datakey/wrapped/${var.fpe_kek_name}"
    capabilities = ["update"]
    description  = "Create a new FPE key version; only its wrapped form is returned."
  }

  rule {
    path         = local.fpe_kv_data
    capabilities = ["create", "read", "update"]
    description  = "Store the wrapped FPE keys."
  }

  rule {
    path         = local.fpe_kv_metadata
    capabilities = ["read", "list"]
    description  = "List FPE domains and entry versions."
  }
}

resource "vault_policy" "producer" {
  name   = "kafkagate-producer"
  policy = data.vault_policy_document.producer.hcl
}

resource "vault_policy" "consumer" {
  name   = "kafkagate-consumer"
  policy = data.vault_policy_document.consumer.hcl
}

resource "vault_policy" "admin" {
  name   = "kafkagate-admin"
  policy = data.vault_policy_document.admin.hcl
}

# --- AppRole -----------------------------------------------------------------------

resource "vault_auth_backend" "approle" {
  type        = "approle"
  path        = var.approle_path
  description = "kafkagate application logins"
}

locals {
  approles = {
    "kafkagate-producer" = { policy = vault_policy.producer.name, ttl = var.producer_token_ttl }
    "kafkagate-consumer" = { policy = vault_policy.consumer.name, ttl = var.consumer_token_ttl }
    "kafkagate-admin"    = { policy = vault_policy.admin.name, ttl = var.admin_token_ttl }
  }
}

# Secret IDs are not created here (they would land in the Terraform state);
# see README.md.
resource "vault_approle_auth_backend_role" "this" {
  for_each = local.approles

  backend               = vault_auth_backend.approle.path
  role_name             = each.key
  token_policies        = [each.value.policy]
  token_ttl             = each.value.ttl
  token_max_ttl         = max(var.token_max_ttl, each.value.ttl)
  secret_id_ttl         = var.secret_id_ttl
  secret_id_bound_cidrs = var.secret_id_bound_cidrs
  token_bound_cidrs     = var.token_bound_cidrs
}
