output "transit_mount" {
  description = "Mount path of the transit engine (transit_mount in [kafkagate])."
  value       = vault_mount.transit.path
}

output "transit_keys" {
  description = "Transit key names by purpose."
  value = {
    fields   = sort([for k in vault_transit_secret_backend_key.topic : k.name])
    envelope = sort([for k in vault_transit_secret_backend_key.envelope : k.name])
    fpe_kek  = vault_transit_secret_backend_key.fpe_kek.name
    legacy   = vault_transit_secret_backend_key.legacy.name
  }
}

output "fpe_kv_path" {
  description = "KV v2 path prefix of the wrapped FPE keys (one entry per domain)."
  value       = "${var.kv_mount}/${var.fpe_kv_prefix}"
}

output "policies" {
  description = "Vault policy names by topic and role (producer, consumer, admin)."
  value = {
    for topic in keys(var.topics) : topic => {
      for role in local.access_roles : role => vault_policy.topic["kafkagate-${topic}-${role}"].name
    }
  }
}

output "approle_path" {
  description = "Mount path of the AppRole auth method."
  value       = vault_auth_backend.approle.path
}

output "approle_role_ids" {
  description = "AppRole role IDs by role name (kafkagate-<topic>-<role>). A role ID is an identifier, not a credential; it is useless without a secret ID."
  value       = { for name, r in vault_approle_auth_backend_role.topic : name => r.role_id }
}
