output "transit_mount" {
  description = "Mount path of the transit engine (transit_mount in [kafkagate])."
  value       = vault_mount.transit.path
}

output "transit_keys" {
  description = "Transit key names by purpose."
  value = {
    topic    = sort([for k in vault_transit_secret_backend_key.topic : k.name])
    fpe_kek  = vault_transit_secret_backend_key.fpe_kek.name
    envelope = vault_transit_secret_backend_key.envelope.name
    legacy   = vault_transit_secret_backend_key.legacy.name
  }
}

output "fpe_kv_path" {
  description = "KV v2 path prefix of the wrapped FPE keys (one entry per domain)."
  value       = "${var.kv_mount}/${var.fpe_kv_prefix}"
}

output "policies" {
  description = "Vault policy names by role."
  value = {
    producer = vault_policy.producer.name
    consumer = vault_policy.consumer.name
    admin    = vault_policy.admin.name
  }
}

output "approle_path" {
  description = "Mount path of the AppRole auth method."
  value       = vault_auth_backend.approle.path
}

output "approle_role_ids" {
  description = "AppRole role IDs by role name. A role ID is an identifier, not a credential; it is useless without a secret ID."
  value       = { for name, r in vault_approle_auth_backend_role.this : name => r.role_id }
}
