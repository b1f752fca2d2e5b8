# Topic names. The defaults match getting_started.ini.orig; the test in
# terraformtest/ fails when the two drift apart.

variable "plaintext_topic" {
  description = "Topic of demo 1 (plaintext records): [plaintext-msg-demo] topic and [encryptor] sourcetopic in getting_started.ini."
  type        = string
  default     = "purchases"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,249}$", var.plaintext_topic))
    error_message = "A Kafka topic name is 1-249 characters from A-Z, a-z, 0-9, '.', '_' and '-'."
  }
}

variable "encrypted_topic" {
  description = "Topic of demo 2 (field-encrypted records): [encryptor] targettopic in getting_started.ini."
  type        = string
  default     = "purchases_encrypted"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,245}$", var.encrypted_topic))
    error_message = "A Kafka topic name is 1-249 characters from A-Z, a-z, 0-9, '.', '_' and '-' (245 here, to leave room for the dead-letter suffix)."
  }
}

variable "large_payload_topic" {
  description = "Topic of demo 3 (envelope-encrypted files): [large_payload] topic in getting_started.ini."
  type        = string
  default     = "purchases_large_encrypted"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,245}$", var.large_payload_topic))
    error_message = "A Kafka topic name is 1-249 characters from A-Z, a-z, 0-9, '.', '_' and '-' (245 here, to leave room for the dead-letter suffix)."
  }
}

variable "dlq_suffix" {
  description = "Suffix of the dead-letter topics kafkagate writes records to when it cannot protect or deliver them (<topic><suffix>)."
  type        = string
  default     = ".dlq"
}

variable "partitions_count" {
  description = "Partitions per topic. The original demo used 1; more partitions let consumers scale out but only keep order per key."
  type        = number
  default     = 1
}

variable "large_message_max_bytes" {
  description = "max.message.bytes of the large-payload topic and its dead-letter topic; must not be below message.max.bytes in [default] of getting_started.ini (8388608)."
  type        = number
  default     = 8388608
}

# Consumer groups.

variable "consumer_group" {
  description = "Consumer group of the decrypting consumers: [consumer] group.id in getting_started.ini."
  type        = string
  default     = "python_example_group_1"
}

variable "bridge_consumer_group" {
  description = "Consumer group of the encrypting bridge (purchases -> purchases_encrypted). Empty means consumer_group, which is what getting_started.ini.orig gives every program; a separate group avoids one program's restart rebalancing the others."
  type        = string
  default     = ""
}

# Confluent Cloud placement. The defaults are the original demo's.

variable "environment_name" {
  description = "Display name of the Confluent Cloud environment to create."
  type        = string
  default     = "Development"
}

variable "cluster_name" {
  description = "Display name of the Kafka cluster to create."
  type        = string
  default     = "basic__demo_kafka_cluster"
}

variable "cloud" {
  description = "Cloud provider of the basic cluster: AWS, AZURE or GCP."
  type        = string
  default     = "GCP"

  validation {
    condition     = contains(["AWS", "AZURE", "GCP"], var.cloud)
    error_message = "cloud must be AWS, AZURE or GCP."
  }
}

variable "region" {
  description = "Cloud region of the basic cluster, e.g. australia-southeast1 (GCP), us-east-1 (AWS)."
  type        = string
  default     = "australia-southeast1"
}

variable "name_prefix" {
  description = "Prefix of the service account and API key display names (service account names are unique per organization)."
  type        = string
  default     = "kafkagate"
}
