# Confluent Cloud for the kafkagate demo: one environment, one basic
# cluster, the demo topics with their dead-letter topics, and one service
# account with its own API key per application role, each limited by ACLs
# to what that role does.
#
# The Cloud API key that runs Terraform comes from the environment:
#   export CONFLUENT_CLOUD_API_KEY=...  CONFLUENT_CLOUD_API_SECRET=...
provider "confluent" {}

locals {
  encrypted_dlq     = "${var.encrypted_topic}${var.dlq_suffix}"
  large_payload_dlq = "${var.large_payload_topic}${var.dlq_suffix}"
  bridge_group      = coalesce(var.bridge_consumer_group, var.consumer_group)

  large_topic_config = {
    "max.message.bytes" = tostring(var.large_message_max_bytes)
  }

  # Map keys are stable resource addresses; the names come from variables.
  topics = {
    plaintext         = { name = var.plaintext_topic, config = {} }
    encrypted         = { name = var.encrypted_topic, config = {} }
    large_payload     = { name = var.large_payload_topic, config = local.large_topic_config }
    encrypted_dlq     = { name = local.encrypted_dlq, config = {} }
    large_payload_dlq = { name = local.large_payload_dlq, config = local.large_topic_config }
  }

  roles = {
    gateway  = "kafkagate HTTP gateway: produces encrypted records"
    bridge   = "kafkagate bridge: reads plaintext records, writes them encrypted"
    consumer = "Decrypting consumers: read encrypted records"
  }

  # What each role may do. READ and WRITE imply DESCRIBE in Kafka's ACL
  # model; the gateway gets DESCRIBE explicitly because it looks topics up
  # (metadata, partitions) before producing.
  acl_list = concat(
    flatten([
      for t in [var.encrypted_topic, local.encrypted_dlq, var.large_payload_topic, local.large_payload_dlq] : [
        for op in ["WRITE", "DESCRIBE"] : { role = "gateway", type = "TOPIC", name = t, op = op }
      ]
    ]),
    [
      { role = "bridge", type = "TOPIC", name = var.plaintext_topic, op = "READ" },
      { role = "bridge", type = "GROUP", name = local.bridge_group, op = "READ" },
      { role = "bridge", type = "TOPIC", name = var.encrypted_topic, op = "WRITE" },
      { role = "bridge", type = "TOPIC", name = local.encrypted_dlq, op = "WRITE" },
      { role = "consumer", type = "TOPIC", name = var.encrypted_topic, op = "READ" },
      { role = "consumer", type = "TOPIC", name = var.large_payload_topic, op = "READ" },
      { role = "consumer", type = "GROUP", name = var.consumer_group, op = "READ" },
    ],
  )
  acls = { for a in local.acl_list : "${a.role}/${a.op}/${a.type}/${a.name}" => a }
}

resource "confluent_environment" "this" {
  display_name = var.environment_name
}

resource "confluent_kafka_cluster" "this" {
  display_name = var.cluster_name
  availability = "SINGLE_ZONE"
  cloud        = var.cloud
  region       = var.region
  basic {}

  environment {
    id = confluent_environment.this.id
  }
}

# --- Terraform's own Kafka credential ------------------------------------
#
# Creating topics and ACLs goes through the cluster's REST API and needs a
# Kafka API key with cluster-admin rights. That key belongs to this service
# account and is used only by the confluent_kafka_topic and
# confluent_kafka_acl resources below. It is not an output, and no
# application uses it.
resource "confluent_service_account" "app_manager" {
  display_name = "${var.name_prefix}-app-manager"
  description  = "Terraform: manages topics and ACLs of the kafkagate demo cluster"
}

resource "confluent_role_binding" "app_manager_cluster_admin" {
  principal   = "User:${confluent_service_account.app_manager.id}"
  role_name   = "CloudClusterAdmin"
  crn_pattern = confluent_kafka_cluster.this.rbac_crn
}

resource "confluent_api_key" "app_manager" {
  display_name = "${var.name_prefix}-app-manager-kafka-api-key"
  description  = "Kafka API key of ${confluent_service_account.app_manager.display_name} (Terraform only)"

  owner {
    id          = confluent_service_account.app_manager.id
    api_version = confluent_service_account.app_manager.api_version
    kind        = confluent_service_account.app_manager.kind
  }

  managed_resource {
    id          = confluent_kafka_cluster.this.id
    api_version = confluent_kafka_cluster.this.api_version
    kind        = confluent_kafka_cluster.this.kind

    environment {
      id = confluent_environment.this.id
    }
  }

  # The key is useless until the role binding exists.
  depends_on = [confluent_role_binding.app_manager_cluster_admin]
}

# --- Topics ----------------------------------------------------------------

resource "confluent_kafka_topic" "this" {
  for_each = local.topics

  kafka_cluster {
    id = confluent_kafka_cluster.this.id
  }

  topic_name       = each.value.name
  partitions_count = var.partitions_count
  config           = each.value.config
  rest_endpoint    = confluent_kafka_cluster.this.rest_endpoint

  credentials {
    key    = confluent_api_key.app_manager.id
    secret = confluent_api_key.app_manager.secret
  }
}

# --- Application identities -------------------------------------------------

resource "confluent_service_account" "app" {
  for_each = local.roles

  display_name = "${var.name_prefix}-${each.key}"
  description  = each.value
}

resource "confluent_api_key" "app" {
  for_each = local.roles

  display_name = "${var.name_prefix}-${each.key}-kafka-api-key"
  description  = "Kafka API key of ${confluent_service_account.app[each.key].display_name}"

  owner {
    id          = confluent_service_account.app[each.key].id
    api_version = confluent_service_account.app[each.key].api_version
    kind        = confluent_service_account.app[each.key].kind
  }

  managed_resource {
    id          = confluent_kafka_cluster.this.id
    api_version = confluent_kafka_cluster.this.api_version
    kind        = confluent_kafka_cluster.this.kind

    environment {
      id = confluent_environment.this.id
    }
  }
}

resource "confluent_kafka_acl" "app" {
  for_each = local.acls

  kafka_cluster {
    id = confluent_kafka_cluster.this.id
  }

  resource_type = each.value.type
  resource_name = each.value.name
  pattern_type  = "LITERAL"
  principal     = "User:${confluent_service_account.app[each.value.role].id}"
  host          = "*"
  operation     = each.value.op
  permission    = "ALLOW"
  rest_endpoint = confluent_kafka_cluster.this.rest_endpoint

  credentials {
    key    = confluent_api_key.app_manager.id
    secret = confluent_api_key.app_manager.secret
  }
}
