output "environment_id" {
  description = "ID of the Confluent Cloud environment."
  value       = confluent_environment.this.id
}

output "cluster_id" {
  description = "ID of the Kafka cluster."
  value       = confluent_kafka_cluster.this.id
}

output "bootstrap_endpoint" {
  description = "bootstrap.servers for getting_started.ini ([default]), without the SASL_SSL:// prefix."
  value       = trimprefix(confluent_kafka_cluster.this.bootstrap_endpoint, "SASL_SSL://")
}

output "rest_endpoint" {
  description = "REST endpoint of the Kafka cluster."
  value       = confluent_kafka_cluster.this.rest_endpoint
}

output "topics" {
  description = "Topic names by purpose."
  value       = { for k, t in confluent_kafka_topic.this : k => t.topic_name }
}

output "gateway_api_key" {
  description = "Kafka API key of the gateway: key is sasl.username, secret is sasl.password."
  value = {
    key    = confluent_api_key.app["gateway"].id
    secret = confluent_api_key.app["gateway"].secret
  }
  sensitive = true
}

output "bridge_api_key" {
  description = "Kafka API key of the encrypting bridge: key is sasl.username, secret is sasl.password."
  value = {
    key    = confluent_api_key.app["bridge"].id
    secret = confluent_api_key.app["bridge"].secret
  }
  sensitive = true
}

output "consumer_api_key" {
  description = "Kafka API key of the decrypting consumers: key is sasl.username, secret is sasl.password."
  value = {
    key    = confluent_api_key.app["consumer"].id
    secret = confluent_api_key.app["consumer"].secret
  }
  sensitive = true
}
