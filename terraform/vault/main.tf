# Vault for kafkagate: the transit engine and the keys the topics' policies
# name, the KV v2 mount for the wrapped FPE keys, and per encrypting topic
# the least-privilege policies and AppRole roles kafkagate-<topic>-producer,
# -consumer and -admin that `gateway provision` creates (same names, same
# policy text: policies.tf).
#
# Address and token come from the environment (VAULT_ADDR, VAULT_TOKEN; a
# private CA through VAULT_CACERT or VAULT_CAPATH). TLS certificates are
# verified; do not set VAULT_SKIP_VERIFY.
provider "vault" {
  namespace = var.vault_namespace
}

# --- Mounts ------------------------------------------------------------------

resource "vault_mount" "transit" {
  path        = var.transit_mount
  type        = "transit"
  description = "kafkagate: per-topic field keys, envelope KEKs, FPE KEK"
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

# Keys of the transit fields (transit_key, default kafka-{topic}) and of
# the blind indexes (index_key), as gateway provision creates them: not
# derived.
resource "vault_transit_secret_backend_key" "topic" {
  for_each = local.fields_keys

  backend            = vault_mount.transit.path
  name               = each.key
  type               = "aes256-gcm96"
  auto_rotate_period = var.auto_rotate_period
  deletion_allowed   = var.key_deletion_allowed
}

# KEKs of the envelope data keys (envelope_key). Derived: the context is the
# topic name, so a wrapped data key copied to another topic does not unwrap.
resource "vault_transit_secret_backend_key" "envelope" {
  for_each = local.envelope_keys

  backend            = vault_mount.transit.path
  name               = each.key
  type               = "aes256-gcm96"
  derived            = true
  auto_rotate_period = var.auto_rotate_period
  deletion_allowed   = var.key_deletion_allowed
}

# KEK of the FPE keys. Derived: each wrapped FPE key is bound to its domain
# and version through the context "<domain>|v<version>". The FPE keys
# themselves (one KV entry per domain) are created by `gateway provision`
# (or on first use), not here: see README.md.
resource "vault_transit_secret_backend_key" "fpe_kek" {
  backend          = vault_mount.transit.path
  name             = var.fpe_kek_name
  type             = "aes256-gcm96"
  derived          = true
  deletion_allowed = var.key_deletion_allowed
}

# The original demo's key "transit" (not derived: the demo sends no
# context). The demo only got it through encrypt's key upsert; here it is
# created explicitly so the legacy formats can be read.
resource "vault_transit_secret_backend_key" "legacy" {
  backend          = vault_mount.transit.path
  name             = var.legacy_transit_key_name
  type             = "aes256-gcm96"
  deletion_allowed = var.key_deletion_allowed
}

# --- Policies ----------------------------------------------------------------------

# kafkagate-<topic>-{producer,consumer,admin}, text from policies.tf.
resource "vault_policy" "topic" {
  for_each = local.policy_hcl

  name   = each.key
  policy = each.value
}

# --- AppRole -----------------------------------------------------------------------

resource "vault_auth_backend" "approle" {
  type        = "approle"
  path        = var.approle_path
  description = "kafkagate application logins"
}

# One role per policy, of the same name, bound to that policy only (what
# gateway provision checks). Secret IDs are not created here (they would
# land in the Terraform state); see README.md.
resource "vault_approle_auth_backend_role" "topic" {
  for_each = local.policy_hcl

  backend               = vault_auth_backend.approle.path
  role_name             = each.key
  token_policies        = [vault_policy.topic[each.key].name]
  token_ttl             = var.token_ttl
  token_max_ttl         = max(var.token_max_ttl, var.token_ttl)
  token_type            = "service"
  secret_id_ttl         = var.secret_id_ttl
  secret_id_bound_cidrs = var.secret_id_bound_cidrs
  token_bound_cidrs     = var.token_bound_cidrs
}
